# The two commands of the README. Each creates the virtual environment it needs on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2

.PHONY: demo test lint install bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

## demo: the embedded default end to end (tiny model, fixtures, HARP and baselines, tables and figures)
demo: install
	$(PY) -m harp.cli.unlock  # a run killed hard left its lock: release it when no snakemake runs here
	$(VENV)/bin/snakemake --cores $(CORES) --workflow-profile workflow/profiles/local
	@echo "report: results/report.md (tables in results/tables/, figures in results/figures/)"

## test: the test suite
test: install
	$(PY) -m pytest

## lint: ruff (lint and format), snakefmt and snakemake's own linter, as CI runs them before the tests
lint: install
	$(VENV)/bin/ruff check harp tests notebooks
	$(VENV)/bin/ruff format --check harp tests notebooks
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/snakemake --lint --quiet

## bench: cached vs plain alpha search on a 32-layer Llama config
bench: install
	$(PY) -m harp.cli.bench_search
