# Two commands for a newcomer: `make demo` and `make test`. Both bootstrap what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: deps demo test lint typecheck bench clean

$(PY): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(PY)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

deps: $(PY) node_modules/.package-lock.json

demo: deps
	$(PY) -m scripts.demo

lint: $(PY)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(PY)
	$(PY) -m mypy

test: deps lint typecheck
	$(PY) -m pytest

bench: deps
	$(PY) -m bench.prune

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .localstack
