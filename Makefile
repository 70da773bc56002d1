# Two commands do everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install demo up down lint test test-unit test-integration test-kafka test-prometheus test-e2e bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: install
	$(BIN)/recovery demo

# The platform live on this machine, in the background: PostgreSQL, a Kafka-protocol broker, serve
# with its relay, Prometheus and a feeder playing the demo quarter from now (README: Watch it live).
# Logs and pid files in .run/; `down` stops exactly the processes `up` recorded there.
up: install
	$(BIN)/recovery up

down:
	@if [ -x $(BIN)/recovery ]; then $(BIN)/recovery down; else echo "nothing to stop: no $(VENV)"; fi

# Lint and type checks (configured in pyproject.toml); each fails the target.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# pytest exits 5 when it collected no tests: make fails on any non-zero exit, so that is a failure
# here (for `test` and `test-unit` alike), never a silent pass.
test: lint
	$(BIN)/python -m pytest -q

# The tests that need no database server, Kafka broker or Prometheus (tests/unit/ and the tests
# marked `unit` elsewhere; markers by folder in tests/conftest.py): seconds, no lint.
test-unit: install
	$(BIN)/python -m pytest -q -m unit

# One layer alone, by its marker: tests/integration/ (the store on SQLite and PostgreSQL), tests/kafka/
# (a real broker), tests/prometheus/ (a real Prometheus), tests/end_to_end/ (marker e2e). No lint.
test-integration test-kafka test-prometheus test-e2e: install
	$(BIN)/python -m pytest -q -m $(patsubst test-%,%,$@)

# Benchmarks (PostgreSQL and the test broker, as for `make test`); results in bench/results/*.json
# and docs/benchmarks.md. At the issue's sizes (the defaults) run 5 took 35 minutes on 2 cores, 18 of
# them building the 1,000,000-complaint store for report and scrape; slower machines take longer
# (docs/benchmarks.md). For a quick look:
#   make bench BENCH_EVENTS=20000 REBUILD_EVENTS=20000 KAFKA_EVENTS=20000 SCRAPE_COMPLAINTS=1000,10000
BENCH_EVENTS ?= 100000,1000000
REBUILD_EVENTS ?= 1000000
KAFKA_EVENTS ?= 100000,1000000
KAFKA_REPLICAS ?= 1
SCRAPE_COMPLAINTS ?= 10000,1000000
bench: install
	$(BIN)/python bench/file_ingest.py --events $(BENCH_EVENTS)
	$(BIN)/python bench/rebuild.py --events $(REBUILD_EVENTS)
	$(BIN)/python bench/kafka_ingest.py --events $(KAFKA_EVENTS) --replicas $(KAFKA_REPLICAS)
	$(BIN)/python bench/scrape_cost.py --store postgres --sizes $(SCRAPE_COMPLAINTS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo-data
