# The two commands of the README:
#   make demo   set everything up and run the main job on the local lab
#   make test   set everything up and run the whole test suite (unit + lab)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv tools demo test unit lab-up lab-down

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

tools:
	bash tools/build-all.sh

demo: venv tools
	$(BIN)/python -m vaultfleet.demo

test: venv tools
	$(BIN)/python -m pytest -v --timeout=1800

unit: venv
	$(BIN)/python -m pytest -v tests/unit

lab-up: venv tools
	$(BIN)/vaultfleet lab up

lab-down: venv
	$(BIN)/vaultfleet lab down
