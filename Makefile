# make run  — install into .venv, load the demo street when the database is empty, serve on :8050
# make test — install what the tests need (Debian chromium, PostgreSQL and Redis 7 included) and run them
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test install install-test pdf-fonts browser servers lint bench clean

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

# Debian's Pango and CJK fonts: the briefing PDF (weasyprint) and screenshots need them.
# HarfBuzz's subsetter cuts the CJK font down to the glyphs used, in C; without it weasyprint falls
# back to fontTools, which took ~10 s per briefing over Noto Sans CJK, against 0.4 s (issue 17).
# For `make run` a failure only warns (the map works without them; the PDF would not).
PDF_LIBS := fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0
HAVE_PDF_LIBS := fc-list 2>/dev/null | grep -q 'Noto Sans CJK' && /sbin/ldconfig -p | grep -q libpangoft2 \
  && /sbin/ldconfig -p | grep -q libharfbuzz-subset
pdf-fonts:
	@$(HAVE_PDF_LIBS) || \
	  ( $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(PDF_LIBS) ) || \
	  echo "warning: fonts-noto-cjk / Pango / HarfBuzz-subset not installed: the briefing PDF needs them" >&2

# Debian's chromium for the browser tests (never a browser download), poppler to read the PDFs.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v pdftotext >/dev/null \
	  && $(HAVE_PDF_LIBS) || \
	  ( $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    chromium chromium-driver poppler-utils $(PDF_LIBS) )

# Debian's PostgreSQL and Redis 7 for the tests: they start throwaway servers from these when
# none answers (initdb in a temporary directory; redis-server on a free port), so none is skipped.
servers:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -x /usr/bin/redis-server ] || \
	  ( $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    postgresql redis-server )

run: install pdf-fonts
	$(BIN)/opsmap load --if-empty --progress
	$(BIN)/opsmap serve

test: install-test browser servers
	$(BIN)/python -m pytest

lint: install-test
	$(BIN)/ruff check .

bench: install-test browser servers
	$(BIN)/python bench/load.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/map.py
	$(BIN)/python bench/map.py 0
	$(BIN)/python bench/briefing.py

clean:
	rm -rf $(VENV) var *.egg-info
