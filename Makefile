# Two commands do everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: install
	$(BIN)/recovery demo

# pytest exits 5 when it collected no tests: that is a failure here, never a silent pass.
test: install
	$(BIN)/python -m pytest -q

# Benchmarks (PostgreSQL and the test broker, as for `make test`); results in bench/results/.
# BENCH_EVENTS=100000,1000000 for the full sizes (the larger takes long on 2 cores).
BENCH_EVENTS ?= 100000
REBUILD_EVENTS ?= 100000
bench: install
	$(BIN)/python bench/file_ingest.py --events $(BENCH_EVENTS)
	$(BIN)/python bench/rebuild.py --events $(REBUILD_EVENTS)
	$(BIN)/python bench/kafka_ingest.py
	$(BIN)/python bench/scrape_cost.py --store postgres --sizes 1000,10000

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo-data
