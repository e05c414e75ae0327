# nhm: the two commands are `make run` and `make test`; each sets itself up (virtualenv, install).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PACKAGES := sdk services/platform services/registry services/scoring services/allocation services/remediation services/dashboard
BUF := node_modules/.bin/buf
BUF_AGAINST ?= .git\#branch=main
PYTEST_ARGS ?=
BENCH_ARGS ?=
# `make up-local`: the PostgreSQL server (the database name is the prefix: nhm_registry, nhm_scoring, ...).
UP_LOCAL_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/nhm
UP_LOCAL_METRICS_PORT ?= 9101

.PHONY: install run up-local test bench reliability gen gen-check lint clean

$(STAMP): constraints.txt requirements-dev.txt $(addsuffix /pyproject.toml,$(PACKAGES))
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -r requirements-dev.txt $(addprefix -e ,$(PACKAGES))
	touch $@

install: $(STAMP)

## Start every service on localhost (SQLite under ./data); Ctrl-C stops them.
run: install
	$(PY) -m nhm_platform.devstack --data-dir data

## Like run, against PostgreSQL (a database per service, migrated first) with two allocation replicas that
## clients reach through dns:///localhost:50053 round robin; metrics from port 9101 up. Ctrl-C stops them.
up-local: install
	$(PY) -m nhm_platform.devstack --data-dir data --postgres-url '$(UP_LOCAL_POSTGRES_URL)' \
	  --allocation-replicas 2 --metrics-base-port $(UP_LOCAL_METRICS_PORT)

## Run the test suite (PostgreSQL tests too when NHM_TEST_POSTGRES_URL is set).
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

## Benchmarks: one table of the hot paths against a bare gRPC echo, JSON in bench-results/, then each service's own
## (NHM_BENCH_POSTGRES_URL adds PostgreSQL runs; BENCH_ARGS=--decay adds the 120 s run). They print figures, never fail.
bench: install
	$(PY) benchmarks/run.py $(BENCH_ARGS)

## The long versions of the reliability tests, printing their figures (docs/reliability.md): feeds, limits,
## hostile input, tenant isolation, load invariants, the model test, faults. NHM_TEST_POSTGRES_URL adds
## PostgreSQL (the load invariants and faults need it). CI runs the short versions as part of `make test`.
reliability: install
	NHM_RELIABILITY_SCALE=$${NHM_RELIABILITY_SCALE:-10} $(PY) -m pytest tests/reliability tests/invariants tests/faults \
	  -p no:cacheprovider -q -s $(PYTEST_ARGS)
	$(PY) tests/reliability/bench_flood.py --bulk-lane --limit-items 1000

## Regenerate the SDK's generated code from protos/ and docs/configuration.md from the settings.
gen: install
	$(PY) tools/gen_protos.py
	$(PY) tools/gen_config_reference.py

## Fail when committed generated code or the configuration reference is stale.
gen-check: install
	@tmp=$$(mktemp -d) && $(PY) tools/gen_protos.py --out $$tmp >/dev/null && \
	  diff -r -x __pycache__ $$tmp/nhm sdk/src/nhm && rm -rf $$tmp && echo "generated code is current"
	$(PY) tools/gen_config_reference.py --check

$(BUF): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

## ruff, buf lint, buf format, buf breaking (against main).
lint: install $(BUF)
	$(PY) -m ruff check .
	$(BUF) lint
	$(BUF) format --diff --exit-code
	@if git rev-parse --verify -q main:protos >/dev/null; then $(BUF) breaking --against '$(BUF_AGAINST)'; \
	  else echo "buf breaking: main has no protos yet"; fi

clean:
	rm -rf $(VENV) node_modules data .pytest_cache .ruff_cache .mypy_cache test-artifacts bench-results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
