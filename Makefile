# The two commands of the README's quick start.  Each creates its own virtual
# environment (in .venv) on first use, so a fresh machine needs only Python 3.11
# and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck unit clean

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The registrar and proxy on loopback with the embedded defaults (UDP and TCP
# 5060, TLS 5061, SQLite and a self-signed certificate in ./var), in the
# foreground until Ctrl-C.  ARGS adds twistd sip options, for example
# make run ARGS="--users users.txt" (see: $(BIN)/twistd sip --help).
run: $(STAMP)
	$(BIN)/twistd -n --pidfile= sip $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check sipstack tests benchmarks
	$(BIN)/ruff format --check sipstack tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(BIN)/python -m twisted.trial -j2 tests

test: lint typecheck unit

clean:
	rm -rf $(VENV) _trial_temp .mypy_cache .ruff_cache
