# The two commands of the README:
#   make demo   set everything up and run the main job on the local lab
#   make test   set everything up and run the whole test suite (unit + lab)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv tools postgres demo test unit lab-up lab-down

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

demo: venv tools postgres
	$(BIN)/python -m vaultfleet.demo

test: venv tools postgres
	$(BIN)/python -m pytest -v --timeout=1800

unit: venv
	$(BIN)/python -m pytest -v tests/unit

lab-up: venv tools postgres
	$(BIN)/vaultfleet lab up

lab-down: venv
	$(BIN)/vaultfleet lab down
