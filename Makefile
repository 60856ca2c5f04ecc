# Two commands: `make demo` and `make test`. Each sets up .venv itself and skips the
# install when pyproject.toml has not changed (the stamp holds its hash).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?= -m "not slow"

.PHONY: demo lint test test-all bench clean install

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/whaleflow demo --out runs/demo

# lint first (ruff, pyflakes rules: see pyproject.toml): a dead import or an undefined name fails
# in seconds, before the tests take minutes
lint: $(STAMP)
	$(VENV)/bin/ruff check whaleflow ray_jobs benchmarks tests

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: lint
	$(PY) -m pytest -m ""

clean:
	rm -rf $(VENV) runs .pytest_cache
