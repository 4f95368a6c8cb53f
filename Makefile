# Two commands on a fresh machine: `make demo` runs the cockpit, `make test` runs every test;
# `make lint` checks style and the floors (CI runs it before the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install check-deploy messages clean backup restore

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Embedded by default (SQLite + filesystem broker); set DATABASE_URL / REDIS_URL for PostgreSQL and Redis.
demo: $(STAMP)
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py run_cockpit

test: $(STAMP)
	DEBUG=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

# Style and the floors: ruff (lint + formatting) and import-linter's contracts from pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The production settings must pass Django's deployment checklist.
check-deploy: $(STAMP)
	DEBUG=0 SECRET_KEY=check-deploy-$$(date +%s)-a-long-random-looking-secret-key-value ALLOWED_HOSTS=cockpit.example.com \
	  $(BIN)/python manage.py check --deploy --fail-level WARNING

# The database (a consistent pg_dump, or SQLite's online backup) and the media files in one archive
# under var/backups/ (BACKUP_DIR=… elsewhere); `make restore ARCHIVE=…` puts one back into a fresh
# database (FORCE=1 replaces a database that already holds orders). README: "Backup and restore".
backup: $(STAMP)
	$(BIN)/python manage.py backup $(if $(BACKUP_DIR),--output-dir "$(BACKUP_DIR)")

restore: $(STAMP)
	@test -n "$(ARCHIVE)" || { echo "usage: make restore ARCHIVE=var/backups/beile-backup-….tar [FORCE=1]"; exit 2; }
	$(BIN)/python manage.py restore "$(ARCHIVE)" $(if $(FORCE),--force)

# Refresh the translation catalogues after changing user-facing strings (needs GNU gettext).
messages: $(STAMP)
	DEBUG=1 $(BIN)/python manage.py makemessages -l zh_Hans -l en --ignore=.venv --ignore=var --ignore=tests --ignore=docs
	DEBUG=1 $(BIN)/python manage.py compilemessages --ignore=.venv

clean:
	rm -rf var/
