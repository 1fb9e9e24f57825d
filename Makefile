# The two commands: `make demo` (run the app with a demo project) and `make test`.
# Debian's CPython where it is there: built with profile-guided optimisation, it runs this app's
# Django code 15-40% faster than a plain source build of the same version (pyenv's default;
# bench/web.py, docs/benchmarks.md). Any Python 3.11 works: `make PYTHON=python3.11 install`.
PYTHON ?= $(shell /usr/bin/python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info[:2] != (3, 11))' \
            2>/dev/null && echo /usr/bin/python3 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install browser migrate clean bench-inference bench-loop

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

## Debian's chromium for the browser tests, when missing and we may install packages (the tests skip without it).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "warning: chromium is not installed; browser tests will be skipped"

migrate: install
	$(BIN)/python manage.py migrate --noinput

## Start a worker and the web server on http://127.0.0.1:8000 with a demo project (Ctrl-C stops both).
demo: migrate
	$(BIN)/python manage.py demo_setup
	$(BIN)/python manage.py rundemo

## Run the test suite (embedded SQLite and filesystem broker unless DATABASE_URL / CELERY_BROKER_URL say otherwise).
# Two pytest processes (pytest-xdist), one torch thread each: a test waiting on its workers or browser leaves
# a core to the other process (docs/benchmarks.md: 9:00 against 13:40 in one). `PYTEST_ARGS=-n0` runs serially.
# pytest exits 5 when it collects nothing: said plainly, not mistaken for a test failure.
PYTEST_ARGS ?= -n 2 --dist worksteal
test: install browser
	$(BIN)/python -m pytest $(PYTEST_ARGS) || { rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; else exit $$rc; fi; }

bench-inference: install
	$(BIN)/python bench/inference.py

## The learning loop measured (about 20 minutes on 2 CPU cores): docs/benchmarks.md.
bench-loop: install
	$(BIN)/python bench/loop.py

clean:
	rm -rf var/test_* .pytest_cache
