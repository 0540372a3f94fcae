# Two commands for a new user:  `make demo`  and  `make test`.
# Each creates .venv from pyproject.toml on first use (uv inside the venv; no global installs).

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

export SODA_CORE_TELEMETRY_ENABLED = false
export PREFECT_SERVER_ANALYTICS_ENABLED = false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS = 90

.PHONY: install demo serve test test-fast lint typecheck bench soak lock clean

install: $(STAMP)

# every package at the version of the lock file (requirements/*.lock, from pyproject.toml by
# `make lock`), then the project itself without resolving anything again
$(STAMP): pyproject.toml requirements/dev.lock
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(VENV)/bin/uv pip sync --quiet --compile-bytecode --python $(PY) requirements/dev.lock
	$(VENV)/bin/uv pip install --quiet --no-deps --python $(PY) -e .
	touch $(STAMP)

demo: $(STAMP)  ## run the demo pipeline on an embedded moto S3
	$(VENV)/bin/lakehouse demo

serve: $(STAMP)  ## the local stack: moto S3, Prefect server + UI, deployments, worker, simulator (Ctrl-C stops it)
	$(VENV)/bin/lakehouse serve

test: $(STAMP)  ## lint, type-check, then every test (slow end-to-end ones included)
	$(VENV)/bin/ruff check lakehouse tasks flows deployments tests bench
	$(VENV)/bin/basedpyright
	@# bytecode once, so the suite's many Python processes do not each compile our modules
	@# (PYTHONDONTWRITEBYTECODE stops Python from caching it; the venv's packages are
	@# compiled at install for the same reason)
	$(PY) -m compileall -q lakehouse tasks flows deployments bench tests
	$(PY) -m tests.shards --durations=25 $(PYTEST_ARGS)

test-fast: $(STAMP)  ## skip the slow end-to-end tests
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check lakehouse tasks flows deployments tests bench

typecheck: $(STAMP)  ## basedpyright on lakehouse/, tasks/, flows/ ([tool.basedpyright] in pyproject.toml)
	$(VENV)/bin/basedpyright

BENCH_STAMP := $(VENV)/.bench-stamp
BENCH_SIZE  ?= medium
BENCH_ARGS  ?=

$(BENCH_STAMP): $(STAMP) pyproject.toml requirements/bench.lock
	$(VENV)/bin/uv pip sync --quiet --compile-bytecode --python $(PY) requirements/bench.lock
	$(VENV)/bin/uv pip install --quiet --no-deps --python $(PY) -e .
	touch $(BENCH_STAMP)

lock:  ## re-resolve requirements/*.lock after a change to pyproject.toml (keeps every pin it can)
	$(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 pyproject.toml --extra dev -o requirements/dev.lock
	$(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 pyproject.toml --extra dev --extra bench -o requirements/bench.lock

bench: $(BENCH_STAMP)  ## the benchmark: BENCH_SIZE=tiny|small|medium|large, BENCH_ARGS="--only merge --repeat 5"
	RUNTIME__DLTHUB_TELEMETRY=false $(PY) -m bench --size $(BENCH_SIZE) --json bench-results.json $(BENCH_ARGS)

SOAK_WINDOWS ?= 500
SOAK_ARGS    ?=

soak: $(STAMP)  ## a long soak: SOAK_WINDOWS windows in one process, flaky S3, tables vs an independent recomputation
	$(PY) -m bench.soak --windows $(SOAK_WINDOWS) --json soak-results.json $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
