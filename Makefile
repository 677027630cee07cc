# The two commands: `make demo` (the whole loop, offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: install serve test demo lint bench calibrate clean-data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its dev tools

serve: install ## Run the API and web UI on PORT (default 8000)
	$(BIN)/uvicorn api.main:app --host 127.0.0.1 --port $(PORT)

test: install ## Run the test suite (offline, no keys)
	$(BIN)/python -m pytest

demo: install ## Bootstrap, drive both experiments, print the verdicts (offline, ~2 minutes)
	$(BIN)/python -m tools.demo $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check .

bench: install ## Run every benchmark under bench/
	for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

calibrate: install ## Error rates of the verdict rules over simulated experiments (10-25 min)
	$(BIN)/python bench/calibrate_verdicts.py

clean-data: ## Delete runtime state (flags, events, indexes, reports)
	rm -rf data logs
