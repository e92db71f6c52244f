# Two commands for a newcomer: `make demo` and `make test`. Both bootstrap what they need.
# Python 3.13, as Azure Functions runs this app: on PATH, or installed through pyenv.
PYTHON ?= $(shell for p in python3.13 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3.13 2>/dev/null | sort -rV); do $$p -c "import sys; assert sys.version_info[:2] == (3, 13)" 2>/dev/null && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: deps demo up test lint typecheck checkov bench year mutate clean

$(PY): requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found: install it (e.g. 'pyenv install 3.13' or your OS package python3.13), or run make PYTHON=/path/to/python3.13" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' || { echo "$(PYTHON) is not Python 3.13; run make PYTHON=/path/to/python3.13" >&2; exit 1; }
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'; then echo "Recreating $(VENV) for Python 3.13"; rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(PY)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

deps: $(PY) node_modules/.package-lock.json

# checkov (IaC scanner) is heavy and pins its own dependencies: its own virtual
# environment, created on first use. Python 3.13, like the app.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

$(CHECKOV):
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found; run make PYTHON=/path/to/python3.13" >&2; exit 1; }
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==3.3.30
	touch $@

# Fails on any parse error (checkov itself exits 0 on those) and on any finding not
# fixed or accepted with a reason in .checkov.yaml.
checkov: $(PY) $(CHECKOV)
	$(PY) -m scripts.checkov_gate $(CHECKOV)

demo: deps
	$(PY) -m scripts.demo

# The local stack and the HTTP API in the foreground, for trying by hand; Ctrl-C stops all.
up: deps
	$(PY) -m devstack.up

lint: $(PY)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m scripts.house

typecheck: $(PY)
	$(PY) -m mypy

test: deps lint typecheck checkov
	$(PY) -m pytest

bench: deps
	$(PY) -m bench.overhead

# A simulated year (400 nights, 3 services, faults on most nights); prints the totals.
year: deps
	$(PY) -m bench.year --nights 400

# Mutation testing of the pure decision modules ([tool.mutmut] in pyproject.toml lists them;
# tests/rules judge them). Slow, so not part of `make test`. mutmut runs the tests in its own
# process, so its environment has the app's runtime dependencies and the test tools, beside
# mutmut itself. Two workers: the machine is shared. Prints the score per module.
MUTMUT_VENV := .venv-mutmut
MUTMUT := $(MUTMUT_VENV)/bin/mutmut
MUTATE_CHILDREN ?= 2

$(MUTMUT): requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found; run make PYTHON=/path/to/python3.13" >&2; exit 1; }
	rm -rf $(MUTMUT_VENV)
	$(PYTHON) -m venv $(MUTMUT_VENV)
	$(MUTMUT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MUTMUT_VENV)/bin/python -m pip install --quiet -r requirements.txt mutmut==3.8.1 pytest==9.2.0 hypothesis==6.170.17
	touch $@

mutate: $(PY) $(MUTMUT)
	$(MUTMUT) run --max-children $(MUTATE_CHILDREN) > mutants-run.log 2>&1 || { tail -n 30 mutants-run.log >&2; exit 1; }
	$(PY) -m scripts.mutation_score

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(MUTMUT_VENV) mutants mutants-run.log node_modules .pytest_cache .mypy_cache .ruff_cache .localstack
