# make run  — install into .venv, load the demo street when the database is empty, serve on :8050
# make test — install what the tests need (Debian chromium included) and run them
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test install install-test browser lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# Debian's chromium for the browser tests (never a browser download), CJK fonts for screenshots.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && fc-list | grep -q 'Noto Sans CJK' || \
	  ( $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver fonts-noto-cjk )

run: install
	$(BIN)/opsmap load --if-empty --progress
	$(BIN)/opsmap serve

test: install-test browser
	$(BIN)/python -m pytest

lint: install-test
	$(BIN)/ruff check .

bench: install-test browser
	$(BIN)/python bench/load.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/map.py

clean:
	rm -rf $(VENV) var *.egg-info
