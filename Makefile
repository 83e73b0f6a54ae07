# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench reference dashboards clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/driftloop demo

test: $(STAMP) lint
	$(BIN)/pytest -q -n 2 --durations=25

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

reference: $(STAMP)
	$(BIN)/python -m monitor.cli.reference --out docs/reference

# regenerate grafana/dashboards/*.json from dashboards/ (a test fails when they differ)
dashboards: $(STAMP)
	$(BIN)/driftloop dashboards build

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
