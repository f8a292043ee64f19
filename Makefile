# The two commands that matter: `make run` (the service with demo data) and `make test`.
# Both create .venv and install the pinned dependencies on first use. With DATABASE_URL unset
# they use an embedded PostgreSQL under var/ (see config/embedded_postgres.py).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# Options of a benchmark, e.g. make bench-yearend BENCH_ARGS="--grants 20000".
BENCH_ARGS ?=
# Test processes: one per core (pytest-xdist; each has its own test database). 0 runs in one process.
PYTEST_WORKERS ?= auto

.DEFAULT_GOAL := help
.PHONY: help run dev test browser-tools bench-tools lint migrate worker beat bench bench-http bench-cost bench-audit bench-yearend bench-partition bench-migration clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(INSTALLED): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is needed (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(INSTALLED) ## Serve on http://127.0.0.1:8000 with demo data (embedded PostgreSQL unless DATABASE_URL is set).
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@echo "Portal: http://$(HOST):$(PORT)/ (sign in as enterprise1, provider1, reviewer, approver, finance, auditor or admin; password demo-pass-2026)"
	@echo "  This year: coupons the centers deduct from their bills. Last year (reimbursement, closed, grants valid 24 months): enterprise1 claims against its coupons, reviewer decides claims, finance settles enterprises."
	@echo "  Web (gunicorn), a Celery worker and beat run together, on an embedded Redis unless REDIS_URL is set; Ctrl-C stops them all."
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m config.run

dev: $(INSTALLED) ## Django's development server with autoreload (no background jobs), on the same data as make run.
	$(BIN)/python manage.py migrate --noinput
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py runserver $(HOST):$(PORT)

test: $(INSTALLED) browser-tools ## Run the whole test suite (embedded PostgreSQL unless DATABASE_URL is set).
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

# The browser tests drive Debian's Chromium, and a test checks the compiled translations with
# gettext. As root on Debian they are installed here; elsewhere, say what to install.
browser-tools:
	@command -v chromium >/dev/null 2>&1 && command -v msgfmt >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei gettext; \
	  else \
	    echo "The browser tests need Debian's chromium and gettext: sudo apt-get install chromium fonts-wqy-microhei gettext"; exit 1; \
	  fi; }

lint: $(INSTALLED) ## ruff and mypy.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

migrate: $(INSTALLED) ## Apply migrations.
	$(BIN)/python manage.py migrate --noinput

worker: $(INSTALLED) ## A Celery worker (needs REDIS_URL).
	$(BIN)/celery -A config worker --loglevel=INFO

beat: $(INSTALLED) ## Celery beat, the one scheduler (needs REDIS_URL).
	$(BIN)/celery -A config beat --loglevel=INFO

bench: $(INSTALLED) ## Ledger throughput against a plain-SQL baseline (not part of the tests).
	$(BIN)/python -m bench.ledger_bench

bench-http: $(INSTALLED) bench-tools ## HTTP requests/s of the money path under gunicorn, measured with wrk (not part of the tests).
	$(BIN)/python -m bench.http_bench

bench-cost: $(INSTALLED) ## Where one redemption's time goes, stage by stage, beside the no-op's (not part of the tests).
	$(BIN)/python -m bench.redemption_cost

# The HTTP benchmark drives Debian's wrk: as root on Debian it is installed here; elsewhere, say so.
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	  else \
	    echo "make bench-http needs wrk: sudo apt-get install wrk"; exit 1; \
	  fi; }

bench-audit: $(INSTALLED) ## Sealing and audit times over a million-transfer ledger.
	$(BIN)/python -m bench.audit_bench

bench-yearend: $(INSTALLED) ## The annual reset over 100,000 grants (batched, against the old per-grant path), then the audit.
	$(BIN)/python -m bench.yearend_bench $(BENCH_ARGS)

bench-partition: $(INSTALLED) ## Balance at a moment and one chain's audit over 10 million transfers, partitioned by chain vs one table.
	$(BIN)/python -m bench.partition_bench

bench-migration: $(INSTALLED) ## How long ledger migration 0004 stops every writer, over 1,000,000 transfers in 5 chains.
	$(BIN)/python -m bench.migration_bench $(BENCH_ARGS)

clean: ## Remove the virtual environment (var/, the embedded database, is kept).
	rm -rf $(VENV)
