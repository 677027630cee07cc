# The two commands: `make demo` (the whole loop, offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: install serve serve-prod test demo lint bench calibrate clean-data pg-start pg-stop serve-pg

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its dev tools

serve: install ## Run the API and web UI on PORT (default 8000)
	$(BIN)/uvicorn api.main:app --host 127.0.0.1 --port $(PORT)

# Production-style: several workers, each with its own SDK client, store writer and pool.
# Idle connections are kept longer than a load balancer's idle timeout (README: several workers).
WORKERS ?= 2
KEEP_ALIVE_S ?= 75
serve-prod: install ## Run the API with WORKERS processes (default 2) on PORT
	$(BIN)/uvicorn api.main:app --host 0.0.0.0 --port $(PORT) --workers $(WORKERS) --no-access-log \
		--timeout-keep-alive $(KEEP_ALIVE_S)

# A local PostgreSQL event store (Debian's server binaries; cluster in data/postgres).
PG_PORT ?= 5433
PG_URL := postgresql://postgres@127.0.0.1:$(PG_PORT)/postgres
pg-start: install ## Start a local PostgreSQL for the event store on PG_PORT (default 5433)
	$(BIN)/python -m tools.local_postgres start --port $(PG_PORT)

pg-stop: install ## Stop the local PostgreSQL
	$(BIN)/python -m tools.local_postgres stop

serve-pg: pg-start ## Run the API with WORKERS processes on the local PostgreSQL
	EVENTS_URL=$(PG_URL) $(BIN)/uvicorn api.main:app --host 127.0.0.1 --port $(PORT) \
		--workers $(WORKERS) --no-access-log --timeout-keep-alive $(KEEP_ALIVE_S)

test: install ## Run the test suite (offline, no keys)
	$(BIN)/python -m pytest

demo: install ## Bootstrap, drive the experiments, print the verdicts (offline, ~80 s)
	$(BIN)/python -m tools.demo $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check .

bench: install ## Run every benchmark under bench/
	for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

calibrate: install ## Error rates of the verdict rules over simulated experiments (10-25 min)
	$(BIN)/python bench/calibrate_verdicts.py

clean-data: ## Delete runtime state (flags, events, indexes, reports)
	rm -rf data logs
