# The two commands of the README:
#   make demo   set everything up and run the main job on the local lab
#   make test   set everything up and run the whole test suite (unit + lab) against the first lab
#               server (OpenBao), then the server-dependent lab tests against HashiCorp Vault
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv tools postgres haproxy demo lint test unit lab-up lab-down

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

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
# then the lab tests marked `server` (their outcome depends on which server runs; see
# docs/testing.md) against each other one. Every pytest session starts and stops its own lab of the
# server $VAULTFLEET_LAB_SERVER names (tests/lab/conftest.py). Each run runs even when an earlier
# one failed; the target fails when any did. `make test LAB_SERVERS=openbao`: one server.
LAB_SERVERS ?= openbao vault

test: lint venv tools postgres haproxy
	@rc=0; summary=""; marks=""; what="whole suite"; \
	for server in $(LAB_SERVERS); do \
		t0=$$(date +%s); \
		echo "[test] $$what against lab server $$server"; \
		if VAULTFLEET_LAB_SERVER=$$server $(BIN)/python -m pytest -v --timeout=1800 $${marks:+-m "$$marks"}; \
		then result=passed; else result=FAILED; rc=1; fi; \
		summary="$$summary\n[test] $$what against $$server: $$result in $$(( $$(date +%s) - t0 ))s"; \
		marks="lab and server"; what="server-dependent lab tests"; \
	done; \
	printf "$$summary\n"; exit $$rc

unit: venv
	$(BIN)/python -m pytest -v tests/unit

lab-up: venv tools postgres
	$(BIN)/vaultfleet lab up

lab-down: venv
	$(BIN)/vaultfleet lab down
