# Developer entry points. `make test` is what CI runs (through .ci/run).
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="-k inspector -x"`.
PYTEST_ARGS ?=

.PHONY: venv run production test lint bench

venv: $(STAMP)

# Create the virtualenv only when it is missing (order-only below, so its
# mtime never forces a reinstall).
$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --upgrade pip

# Reinstall only when requirements.txt is newer than the stamp.
$(STAMP): requirements.txt | $(VPY)
	$(VPY) -m pip install -r requirements.txt
	touch $(STAMP)

run: venv
	$(VPY) manage.py migrate --noinput
	$(VPY) manage.py bookshelf_demo
	$(VPY) manage.py ensure_local_staff --url http://$(HOST):$(PORT)/admin/
	exec $(VENV)/bin/daphne -b $(HOST) -p $(PORT) bookshelf.asgi:application

# The Procfile's production shape (daphne, workers, the store indexer; DEBUG off) on a
# throwaway PostgreSQL and Redis; plain http://127.0.0.1:$(PORT). README, "Run in production".
production: venv
	PORT=$(PORT) bash scripts/run-production

test: venv
	bash scripts/test-all $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: venv
	$(VPY) bench/seed_workload.py
