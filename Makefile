# Lifecycle Review Board — developer commands.
#
#   make run            .venv, migrate, demo data (grading on), then web + Celery worker + beat (Procfile.dev)
#   make test           .venv, then the whole suite on SQLite (browser tests included) but tests/services
#   make test-postgres  the same on PostgreSQL at 127.0.0.1:5432
#   make test-services  tests/services: a real Celery worker and beat on Redis, PostgreSQL
#   make bench          the benchmark suite (benchmarks/bench_suite.py): every page, 50 approvals,
#                       the audit export and the dossier PDF against a hello-world Django app, at
#                       the sizes small (30 projects), medium (300), large (30,000 projects,
#                       10,000,000 audit events); prints `RATIO <name> <value>` lines. Options:
#                         BENCH_SIZES=small,medium  (default small,medium,large)
#                         BENCH_ROUNDS=3  BENCH_DURATION=5  (rounds; seconds per wrk run)
#                         BENCH_ONLY=stage,board,approvals,export,pdf  (some figures only)
#                       Data is seeded with COPY into lrb_bench_<size> once and reused; servers on
#                       ports 8120 (app) and 8121 (hello-world) (BENCH_APP_PORT, BENCH_HELLO_PORT;
#                       LRB_BENCH_BROKER: the Redis the servers use, default DB 2); installs wrk.
#   make bench-smoke    CI: small only, one 1-second wrk round per page, no approvals/export/PDF
#   make bench-scripts  benchmarks/: reminder sweep queries and outbox delivery rate
#   make lint           ruff check, ruff format --check, mypy
#   make api-schema     write the REST API's OpenAPI schema to api/openapi.yaml (a test compares)
#   make mutation       mutation testing (cosmic-ray) of the gate, the transitions, the audit chain
#                       and the permissions, with their mapped tests; MUTATION_TARGETS=file... for some
#   make mutation-changed  the same over what the last commit changed among them, in ~5 minutes
#   make migrate        apply migrations to the local database (var/db.sqlite3 by default)
#   make clean          remove var/ (database, broker queue, static files) and tool caches
#   make distclean      clean, and remove .venv as well

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
POSTGRES_TEST_URL ?= postgres://postgres@127.0.0.1:5432/lrb_test
POSTGRES_SERVICES_URL ?= postgres://postgres@127.0.0.1:5432/lrb_services
POSTGRES_BENCH_URL ?= postgres://postgres@127.0.0.1:5432/lrb_bench
# tests/services start Celery processes on Redis and PostgreSQL; they have their own target.
SERVICES_IGNORE := --ignore=tests/services
BENCH_SIZES ?= small,medium,large
BENCH_ROUNDS ?= 3
BENCH_DURATION ?= 5
BENCH_ONLY ?=
BENCH_APP_PORT ?= 8120
BENCH_HELLO_PORT ?= 8121
# Two workers on the two cores; each gets its own test database. Work stealing: each worker
# starts with one half of the suite in order (a module's shared matrix data is built once per
# worker) and takes over the other's last tests when it runs out.
PYTEST_WORKERS ?= -n 2 --dist worksteal

# honcho's children (runserver, celery) find the venv's python and celery on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)

.DEFAULT_GOAL := help
.PHONY: help venv run test test-postgres test-services bench bench-smoke bench-scripts lint \
	mutation mutation-changed migrate clean distclean api-schema

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Reinstall only when pyproject.toml changed since the last install. The project itself has no
# importable packages (manage.py runs from the repository root); the editable install is how pip
# reads its dependency list.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $@

venv: $(STAMP)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --no-input

run: migrate
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py seed_grading_demo
	$(BIN)/honcho -f Procfile.dev start

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_WORKERS) $(SERVICES_IGNORE)

test-postgres: $(STAMP)
	DATABASE_URL=$(POSTGRES_TEST_URL) $(BIN)/pytest $(PYTEST_WORKERS) $(SERVICES_IGNORE)

test-services: $(STAMP)
	DATABASE_URL=$(POSTGRES_SERVICES_URL) $(BIN)/pytest tests/services -p no:cacheprovider --create-db

bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { \
		if [ "$$(id -u)" -eq 0 ]; then apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; \
		else sudo apt-get install -y wrk || { sudo apt-get update && sudo apt-get install -y wrk; }; fi; }
	DATABASE_URL=$(POSTGRES_BENCH_URL) $(BIN)/python benchmarks/bench_suite.py \
		--sizes $(BENCH_SIZES) --rounds $(BENCH_ROUNDS) --duration $(BENCH_DURATION) \
		--app-port $(BENCH_APP_PORT) --hello-port $(BENCH_HELLO_PORT) --only '$(BENCH_ONLY)'

# CI: the small size, one short wrk round per page against hello-world, every page answering.
bench-smoke: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { \
		if [ "$$(id -u)" -eq 0 ]; then apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; \
		else sudo apt-get install -y wrk || { sudo apt-get update && sudo apt-get install -y wrk; }; fi; }
	DATABASE_URL=$(POSTGRES_BENCH_URL) $(BIN)/python benchmarks/bench_suite.py --smoke \
		--app-port $(BENCH_APP_PORT) --hello-port $(BENCH_HELLO_PORT)

bench-scripts: $(STAMP)
	DATABASE_URL=$(POSTGRES_BENCH_URL) $(BIN)/python benchmarks/reminder_sweep.py
	DATABASE_URL=$(POSTGRES_BENCH_URL) $(BIN)/python benchmarks/outbox_delivery.py

# One target at a time, one mutant at a time, on SQLite: see mutation/targets.toml.
mutation: $(STAMP)
	$(BIN)/python mutation/run.py $(MUTATION_TARGETS)

# CI: only the targets and lines the last commit touched, bounded in time (mutation/run.py).
mutation-changed: $(STAMP)
	timeout 360 $(BIN)/python mutation/run.py --changed HEAD~1 --budget 300

api-schema: $(STAMP)
	$(BIN)/python manage.py spectacular --file api/openapi.yaml --validate --fail-on-warn

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy accounts lifecycle reviews notifications api lti config evidence grading

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .hypothesis tests/artifacts \
		*.egg-info build
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
