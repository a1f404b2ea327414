# The two commands of the README:
#   make demo   set everything up and run the main job on the local lab
#   make test   set everything up and run the whole test suite (unit + lab) against the first lab
#               server (OpenBao), then the server-dependent lab tests against HashiCorp Vault
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv wheel tools postgres haproxy demo lint test unit lab-up lab-down

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# vaultfleet as a versioned package: the wheel a fleet repository installs (docs/fleet-repository.md):
# the program, the CLI, the components and the fleet templates (policies, workflow); not the lab's
# toolchain scripts (tools/) nor the tests. Built by pip with the setuptools pyproject.toml pins.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
WHEEL := dist/vaultfleet-$(VERSION)-py3-none-any.whl

wheel: venv
	rm -f dist/vaultfleet-*.whl
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .
	@echo "[wheel] $(WHEEL)"

tools:
	bash tools/build-all.sh

# The lab's PostgreSQL server (Debian package postgresql), installed only when missing. CI runs as
# root without a terminal: no prompts (-y, noninteractive), package lists refreshed only if needed.
postgres:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q postgresql || { apt-get update -q && apt-get install -y -q postgresql; }; \
	}

# HAProxy in front of the lab's HA Vault (`vaultfleet lab up --ha`, the HA lab tests), the same way.
haproxy:
	@command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy || { \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q haproxy || { apt-get update -q && apt-get install -y -q haproxy; }; \
	}

demo: venv tools postgres
	$(BIN)/python -m vaultfleet.demo

# ruff (pinned in pyproject.toml): lint findings and unformatted files fail `make test` first.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The suite runs once per lab server of LAB_SERVERS: the whole suite (unit + lab) against the first,
# the lab tests marked `server` (their outcome depends on which server runs; see docs/testing.md)
# against each other one. The runs go at the same time, each pytest session with a lab of its own
# on ports of its own (tests/passes.sh says why and how); the target fails when any run did.
# `make test LAB_SERVERS=openbao`: one server.
LAB_SERVERS ?= openbao vault

# The unit tests check the wheel just built (tests/unit/test_init.py: its files, installed on its own
# it runs `vaultfleet init`); the lab tests run a fleet `vaultfleet init` wrote.
test: lint venv wheel tools postgres haproxy
	@VAULTFLEET_WHEEL=$(CURDIR)/$(WHEEL) bash tests/passes.sh $(LAB_SERVERS)

unit: venv
	$(BIN)/python -m pytest -v tests/unit

lab-up: venv tools postgres
	$(BIN)/vaultfleet lab up

lab-down: venv
	$(BIN)/vaultfleet lab down
