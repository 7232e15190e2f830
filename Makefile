# The project's one entry point. `make demo` and `make test` install what they need by themselves
# (Debian packages, the toolkit's venv, the sandbox's services) and are safe to run twice.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup host-packages demo test lint unit integration sandbox-up sandbox-down clean

host-packages:
	@scripts/host-packages.sh

$(STAMP): setup.cfg pyproject.toml sandbox/setup.cfg | host-packages
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --editable '.[dev]'
	touch $@

setup: host-packages $(STAMP)

sandbox-up: setup
	$(BIN)/container-infra sandbox up

sandbox-down:
	$(BIN)/container-infra sandbox down

demo: sandbox-up
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/demo.sh

lint: setup
	$(BIN)/ruff check src sandbox tests benchmarks
	$(BIN)/yamllint --strict .

unit: setup
	$(BIN)/pytest -m "not sandbox" $(PYTEST_ARGS)

# The integration tests bring the sandbox up themselves (once per run, tests/conftest.py).
integration: setup
	$(BIN)/pytest -m sandbox $(PYTEST_ARGS)

test: lint setup
	$(BIN)/pytest $(PYTEST_ARGS)

clean: sandbox-down
	rm -rf $(VENV) .pytest_cache .ruff_cache
