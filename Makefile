# Swedify: `make run` starts everything on one machine, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench bench-deploy clean-venv messages

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Swedify needs Python 3.11 or newer; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

run: $(STAMP)
	@scripts/run

# Each run has a data folder of its own under var/test-runs/ (SQLite test database, broker,
# HAProxy and slot state) unless SWEDIFY_DATA_DIR is set, and a run id that names its
# PostgreSQL test database (tests/run_guards.py): two runs side by side share nothing. The
# folder is removed when the run passes. PYTEST_STATUS_FILE, if set, receives pytest's own
# exit status (make reports every failure as 2; CI needs to tell "no tests ran" apart).
TEST_RUNS := $(CURDIR)/var/test-runs

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@run="$$(date -u +%m%d%H%M%S)_$$$$"; \
	data="$${SWEDIFY_DATA_DIR:-$(TEST_RUNS)/$$run}"; \
	mkdir -p "$$data" || exit 2; \
	echo "test run $$run, data folder $$data"; \
	SWEDIFY_DATA_DIR="$$data" SWEDIFY_TEST_RUN="$$run" $(BIN)/python -m pytest $(PYTEST_ARGS); \
	status=$$?; \
	if [ -n "$(PYTEST_STATUS_FILE)" ]; then echo "$$status" > "$(PYTEST_STATUS_FILE)"; fi; \
	if [ "$$status" -eq 0 ] && [ -z "$${SWEDIFY_DATA_DIR:-}" ]; then rm -rf "$$data"; fi; \
	exit "$$status"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

bench-deploy: $(STAMP)
	$(BIN)/python -m benchmarks deploy $(BENCH_ARGS)

# Swedish messages: collects every wrapped string of the listener pages into locale/sv/*.po
# (translate the new and fuzzy ones there), then compiles the .mo files, which are committed:
# running Swedify needs no gettext tools, only this target does (apt-get install gettext).
# tests/swedify/test_i18n_catalogs.py fails while a .po has an untranslated or fuzzy message
# or a .mo does not match its .po; test_i18n_messages_fresh.py (same flags as here) while a
# wrapped string is missing from a .po.
MESSAGES_IGNORE := --ignore=var --ignore=tests --ignore=benchmarks --ignore=sandbox \
	--ignore=deployments --ignore=scripts

messages: $(STAMP)
	@command -v msgfmt >/dev/null || { echo "make messages needs GNU gettext (apt-get install gettext)"; exit 2; }
	$(BIN)/python manage.py makemessages --locale=sv --no-obsolete --add-location=file $(MESSAGES_IGNORE)
	$(BIN)/python manage.py makemessages --locale=sv --domain=djangojs --no-obsolete --add-location=file $(MESSAGES_IGNORE)
	$(BIN)/python manage.py compilemessages --locale=sv --ignore=.venv $(MESSAGES_IGNORE)

clean-venv:
	rm -rf $(VENV)
