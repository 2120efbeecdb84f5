# Set-up and everyday commands. `make run` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: install run migrate test lint format bench bench-data bench-serving soak clean

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is needed: install Python 3.11 (or run make PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# The editor's graph library and its plugins come from npm (package-lock.json pins them).
node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the editor's assets: install Node.js 18+ with npm (e.g. apt-get install nodejs npm), then run make again"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(VENV)/.installed node_modules/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

# Embedded profile: SQLite, filesystem broker, in-memory channel layer; web, worker and beat.
run: migrate
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py load_starters
	$(BIN)/python manage.py bootstrap_demo
	@echo "  Serving on http://$(HOST):$(PORT)/  (Ctrl-C stops web, worker and beat)"
	LOG_FORMAT=$${LOG_FORMAT:-console} $(BIN)/honcho -f Procfile start

test: install
	$(BIN)/python manage.py makemigrations --check --dry-run --verbosity 0 || { echo "Missing migrations: run manage.py makemigrations"; exit 1; }
	$(BIN)/pytest

# Benchmarks on PostgreSQL and Redis with a real worker, and wrk (installed here when missing)
# against Procfile.production's web server; one JSON line per figure.
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/orchestrator_bench
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/14
bench: install
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } \
		|| { echo "wrk is needed for the list figures: install it (apt-get install wrk)"; exit 1; }
	@psql "$(dir $(BENCH_DATABASE_URL))postgres" -tAc "SELECT 1 FROM pg_database WHERE datname='$(notdir $(BENCH_DATABASE_URL))'" | grep -q 1 \
		|| psql "$(dir $(BENCH_DATABASE_URL))postgres" -c "CREATE DATABASE $(notdir $(BENCH_DATABASE_URL))"
	DATABASE_URL=$(BENCH_DATABASE_URL) REDIS_URL=$(BENCH_REDIS_URL) VAR_DIR=$(CURDIR)/var/bench $(BIN)/python -m bench.engine

# A year of data (100,000 runs, 1,000,000 steps, 5,000,000 events, loaded in minutes): the hot
# pages against a near-empty database. Its database is its own: the stage empties the runs tables.
BENCH_DATA_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/orchestrator_bench_data
bench-data: install
	@psql "$(dir $(BENCH_DATA_DATABASE_URL))postgres" -tAc "SELECT 1 FROM pg_database WHERE datname='$(notdir $(BENCH_DATA_DATABASE_URL))'" | grep -q 1 \
		|| psql "$(dir $(BENCH_DATA_DATABASE_URL))postgres" -c "CREATE DATABASE $(notdir $(BENCH_DATA_DATABASE_URL))"
	DATABASE_URL=$(BENCH_DATA_DATABASE_URL) REDIS_URL=$(BENCH_REDIS_URL) THROTTLE_USER=10000000/min VAR_DIR=$(CURDIR)/var/bench-data $(BIN)/python -m bench.data

# Requests/s of the API list and /healthz under daphne, uvicorn and gunicorn (wrk if installed).
SERVING_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/orchestrator_serving
SERVING_REDIS_URL ?= redis://127.0.0.1:6379/13
bench-serving: install
	@psql "$(dir $(SERVING_DATABASE_URL))postgres" -tAc "SELECT 1 FROM pg_database WHERE datname='$(notdir $(SERVING_DATABASE_URL))'" | grep -q 1 \
		|| psql "$(dir $(SERVING_DATABASE_URL))postgres" -c "CREATE DATABASE $(notdir $(SERVING_DATABASE_URL))"
	DATABASE_URL=$(SERVING_DATABASE_URL) REDIS_URL=$(SERVING_REDIS_URL) VAR_DIR=$(CURDIR)/var/bench-serving $(BIN)/python -m bench.serving

# Fault and security tests at full counts (killed workers, duplicate deliveries, broker flush,
# two beats, DST) on PostgreSQL and Redis; `make test` runs the short counts. Figures are printed
# at the end and kept in var/soak/fault-figures.jsonl.
SOAK_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/orchestrator_soak
SOAK_REDIS_URL ?= redis://127.0.0.1:6379/11
soak: install
	@psql "$(dir $(SOAK_DATABASE_URL))postgres" -tAc "SELECT 1 FROM pg_database WHERE datname='$(notdir $(SOAK_DATABASE_URL))'" | grep -q 1 \
		|| psql "$(dir $(SOAK_DATABASE_URL))postgres" -c "CREATE DATABASE $(notdir $(SOAK_DATABASE_URL))"
	SOAK=1 DATABASE_URL=$(SOAK_DATABASE_URL) REDIS_URL=$(SOAK_REDIS_URL) VAR_DIR=$(CURDIR)/var/soak $(BIN)/pytest tests/fault tests/security -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python tools/mypy_baseline.py

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var node_modules .pytest_cache .ruff_cache .mypy_cache *.egg-info
