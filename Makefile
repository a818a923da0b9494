# The two entry points of the README: `make up` (install + run the embedded default) and
# `make test` (install + lint + type-check + layer contracts + the whole test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: up test lint install install-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

up: $(VENV)/.installed
	$(BIN)/eventbridge up $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check eventbridge tests $(wildcard bench scripts)
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	bash scripts/test_system_deps.sh $(BIN)/python
	bash scripts/test_assets.sh
	bash scripts/argo_cli.sh >/dev/null
	bash scripts/minio.sh >/dev/null
	bash scripts/k8s_binaries.sh >/dev/null
	bash scripts/kafka.sh >/dev/null
	$(BIN)/python -m bench --quick  # a smoke test of the benchmarks: it must finish; timings never gate
	$(BIN)/python -m pytest $(PYTEST_ARGS)
