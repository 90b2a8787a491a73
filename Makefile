# Every target sets itself up: a fresh clone needs only python3 (3.11+).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= config/rtstream.toml

.PHONY: install run demo docs test soak soak-random loops lint bench image clean compat

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,dev,yaml,postgres]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

# Ctrl-C stops the daemon (exit 0) and not make: the daemon gets the terminal's foreground group
run: $(VENV)/.installed
	$(BIN)/python -m rtstream.support.foreground $(BIN)/rtstream run -c $(CONFIG)

# Kafka (Tansu), PostgreSQL and S3 (moto) started here, no Docker; a producer, a pipeline and a DAG
# in one daemon, the status page on DEMO_ADMIN. Ctrl-C stops everything and exits 0.
DEMO_ADMIN ?= 127.0.0.1:8080
demo: $(VENV)/.installed-test
	bash .ci/system-deps
	$(BIN)/python -m rtstream.support.foreground $(BIN)/python -m rtstream.testing.demo --admin $(DEMO_ADMIN) $(DEMO_ARGS)

# docs/CONFIG.md from the config models (a test fails when it is out of date)
docs: $(VENV)/.installed
	$(BIN)/python -m rtstream.config.reference docs/CONFIG.md

# Four pytest workers, a test file each at a time: most of the suite waits on real daemons and brokers
# (the two cores stay below full with three: load average about 1.4).
TEST_WORKERS ?= 4
test: $(VENV)/.installed-test
	bash .ci/system-deps
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The compatibility oracle: the real apache-airflow (its own venv, .venv-airflow, never make test's)
# runs every corpus DAG of tests/compat/dags with `airflow dags test` and records each run in
# tests/compat/expected/; then rtstream replays them (tests/compat/test_compat.py, also in make test).
# .venv-airflow-bridge (that Airflow + this rtstream, as `pip install 'rtstream[airflow]'`) runs the
# operator bridge's tests (tests/compat/test_bridge.py; make test runs them when that venv is there).
# COMPAT_ARGS: e.g. --only example_xcom, or --check to compare a fresh Airflow run with the recording.
AIRFLOW_PYTHON ?= python3.11
compat: $(VENV)/.installed-test
	$(AIRFLOW_PYTHON) -m tests.compat.oracle $(COMPAT_ARGS)
	$(AIRFLOW_PYTHON) -m tests.compat.runs_oracle
	$(AIRFLOW_PYTHON) -m tests.compat.bridge_venv
	$(BIN)/python -m pytest tests/compat $(PYTEST_ARGS)

# The long fault scenarios (twenty SIGKILLs, a slow sink for a minute, a 20 s outage), then the
# randomized harness over SEEDS.
soak: $(VENV)/.installed-test
	bash .ci/system-deps
	RTSTREAM_OUTAGE_S=20 $(BIN)/python -m pytest -m soak -s tests/faults $(PYTEST_ARGS)
	$(MAKE) soak-random
	$(MAKE) loops

# The suite's looped kill, restart and SIGTERM tests (tests.support.LOOPS) with 20 seeds each; make test runs 3.
LOOPS ?= 20
LOOPED_TESTS = $(shell grep -rl 'LOOPS' tests --include='test_*.py')
loops: $(VENV)/.installed-test
	bash .ci/system-deps
	RTSTREAM_LOOPS=$(LOOPS) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(LOOPED_TESTS) $(PYTEST_ARGS)

# The randomized fault harness (tests/faults/harness) over many seeds, with its figures at the end.
# KNOWN_BUGS lists product bugs to step around (empty: run everything).
SEEDS ?= 1-200
KNOWN_BUGS ?= tansu_metadata,tansu_s3_slow
# KINDS=edge (or sql,lookup,s3,eos): only the scenarios of the newer edges; empty: the seed decides
KINDS ?=
soak-random: $(VENV)/.installed-test
	$(BIN)/python -m tests.faults.harness --seeds $(SEEDS) --known-bugs "$(KNOWN_BUGS)" --kinds "$(KINDS)"

# ruff, mypy, and the layers of pyproject.toml's [tool.importlinter] (an import up a layer fails)
lint: $(VENV)/.installed-test
	$(BIN)/ruff check rtstream tests bench
	$(BIN)/mypy rtstream
	$(BIN)/lint-imports --no-cache

# W1 (1M records, then 4M side by side with the raw loop), then live latency at 50,000 records/s, then
# the DAG figures (a three-task DAG's overhead per run; 100 DAGs every 10 s in one daemon). With an
# Airflow venv (make compat's, or AIRFLOW=path/bin/airflow), `airflow dags test` on the same DAG too.
AIRFLOW ?= $(wildcard .venv-airflow/bin/airflow)
# Then Nexmark (bench/nexmark/README.md): rtstream's queries beside Flink SQL (PyFlink, in its own venv),
# and the window join's memory (2 x 1,000,000 records over 100,000 keys; goal: peak RSS < 500 MB).
FLINK_VENV ?= bench/.venv-flink
$(FLINK_VENV)/.installed:
	$(PYTHON) -m venv $(FLINK_VENV)
	$(FLINK_VENV)/bin/python -m pip install -q --upgrade pip
	$(FLINK_VENV)/bin/pip install -q apache-flink==2.3.0
	touch $@

bench: $(VENV)/.installed-test $(FLINK_VENV)/.installed
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.latency $(LATENCY_ARGS)
	$(BIN)/python -m bench.dags $(if $(AIRFLOW),--airflow $(AIRFLOW)) $(DAGS_ARGS)
	$(BIN)/python -m bench.nexmark $(NEXMARK_ARGS)
	$(BIN)/python -m bench.join_memory $(JOIN_MEMORY_ARGS)

# Build the container image with podman or docker. Where no registry is reachable, pass a local
# base image that has python3: make image BASE=localhost/debian-python:12
BASE ?= python:3.11-slim
ENGINE ?= $(shell command -v podman || command -v docker)
image:
	$(ENGINE) build --build-arg BASE=$(BASE) -t rtstream:latest .

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
