# Everything runs inside .venv, created on first use. Dependencies are pinned by constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lint test demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1"

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check monitor tests bench migrations
	$(BIN)/ruff format --check monitor tests bench migrations
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

# Simulator + daemon + console alerts on the built-in scenario; ends by itself within two minutes.
demo: install
	$(BIN)/portfolio-monitor demo

bench: install
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/storage.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
