# Two commands for a new user:  `make demo`  and  `make test`.
# Each creates .venv from pyproject.toml on first use (uv inside the venv; no global installs).

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

export SODA_CORE_TELEMETRY_ENABLED = false
export PREFECT_SERVER_ANALYTICS_ENABLED = false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS = 90

.PHONY: install demo serve test test-fast lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## run the demo pipeline on an embedded moto S3
	$(VENV)/bin/lakehouse demo

serve: $(STAMP)  ## the local stack: moto S3, Prefect server + UI, deployments, worker, simulator (Ctrl-C stops it)
	$(VENV)/bin/lakehouse serve

test: $(STAMP)  ## lint, then every test (slow end-to-end ones included)
	$(VENV)/bin/ruff check lakehouse tasks flows deployments tests bench
	$(PY) -m pytest --durations=25 $(PYTEST_ARGS)

test-fast: $(STAMP)  ## skip the slow end-to-end tests
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check lakehouse tasks flows deployments tests bench

BENCH_STAMP := $(VENV)/.bench-stamp
BENCH_SIZE  ?= medium
BENCH_ARGS  ?=

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## the benchmark: BENCH_SIZE=tiny|small|medium|large, BENCH_ARGS="--only merge --repeat 5"
	RUNTIME__DLTHUB_TELEMETRY=false $(PY) -m bench --size $(BENCH_SIZE) --json bench-results.json $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
