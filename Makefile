# The project's one entry point. `make demo` and `make test` install what they need by themselves
# (Debian packages, the toolkit's venv, the sandbox's services) and are safe to run twice.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup host-packages demo tour test lint unit integration plugin-tests sandbox-up sandbox-down clean \
	lifecycle-tests offline-tests plugin-test-deps

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

tour: sandbox-up
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/openstack-cli-tour.sh

PY_SOURCES := src sandbox tests benchmarks library filter_plugins callback_plugins inventory_plugins doc_fragments
ANSIBLE_CONTENT := roles playbooks inventories molecule

lint: setup
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production --offline $(ANSIBLE_CONTENT)

unit: setup
	$(BIN)/pytest -m "not sandbox" $(PYTEST_ARGS)

# The integration tests bring the sandbox up themselves (once per run, tests/conftest.py).
integration: setup
	$(BIN)/pytest -m sandbox $(PYTEST_ARGS)

# The sandbox plugins import Nova, Neutron, Magnum and Manila: their tests run with the services'
# interpreter, one file per process (each service's test base holds global state), and a skip
# counts as a failure so that a missing test dependency cannot pass silently.
SANDBOX_PY = $(shell $(BIN)/python -c 'from container_infra.sandbox.layout import Layout; print(Layout.default().bin("python"))' 2>/dev/null)
PLUGIN_TEST_DEPS = pytest testtools oslotest webtest ddt wsgi-intercept

plugin-test-deps: setup
	$(BIN)/container-infra sandbox install
	$(SANDBOX_PY) -m pip install --quiet --disable-pip-version-check -c sandbox/constraints.txt $(PLUGIN_TEST_DEPS)

# pipefail: a failing test file fails the loop (tee alone would answer 0).
define RUN_PLUGIN_TESTS
@set -eo pipefail; for file in tests/sandbox_plugins/test_*.py; do \
	echo "== $$file"; \
	$(SANDBOX_PY) -m pytest -q -p no:cacheprovider -rs $$file | tee .plugin-test.log; \
	if grep -qE "[0-9]+ skipped" .plugin-test.log; then echo "$$file: tests were skipped" >&2; exit 1; fi; \
done; rm -f .plugin-test.log
endef

plugin-tests: plugin-test-deps
	$(RUN_PLUGIN_TESTS)

# Integration tests mostly wait on the cloud (Magnum and Heat poll every few seconds), so files run in
# parallel workers, longest first (tests/conftest.py orders them; xdist's own reordering by test count
# would start the few-test, long files last). The lifecycle tests restart the whole cloud and run alone,
# last; they mostly wait for services to stop and start, so lint, the unit tests and the sandbox plugins'
# tests (none of which needs the cloud) run beside them, each group's output kept apart (--output-sync)
# and either group's failure failing the run.
PYTEST_WORKERS ?= 2
LIFECYCLE := tests/integration/test_zz_lifecycle.py

test: setup plugin-test-deps
	$(BIN)/pytest -m sandbox -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=30 \
		--ignore $(LIFECYCLE) $(PYTEST_ARGS)
	$(MAKE) --no-print-directory -j2 --output-sync=target lifecycle-tests offline-tests

lifecycle-tests: setup
	$(BIN)/pytest --durations=10 $(LIFECYCLE) $(PYTEST_ARGS)

# Run by `test` after plugin-test-deps: installing here would race the lifecycle tests' `up`.
offline-tests: setup
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -m "not sandbox" --durations=10 $(PYTEST_ARGS)
	$(RUN_PLUGIN_TESTS)

clean: sandbox-down
	rm -rf $(VENV) .pytest_cache .ruff_cache
