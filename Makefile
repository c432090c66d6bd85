# losslab: two commands on a fresh machine.
#   make demo   set up .venv, then a quick paper reproduction -> reports/quick/report.html
#   make test   set up .venv with the test extra, then the test suite (the docs build in it)
#   make docs   the documentation site -> build/docs/index.html
PYTHON ?= python3
VENV ?= .venv
# The pinned CPU wheel; an open range would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
PRESET ?= quick
PYTEST_ARGS ?= -n 2
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test test-fast setup setup-test lint bench docs clean

$(VENV)/.stamp-torch:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install "$(TORCH_SPEC)"
	touch $@

$(VENV)/.stamp-experiments: $(VENV)/.stamp-torch pyproject.toml
	$(PIP) install --quiet -e ".[experiments]"
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-torch pyproject.toml
	$(PIP) install --quiet -e ".[test]"
	touch $@

setup: $(VENV)/.stamp-experiments
setup-test: $(VENV)/.stamp-test

demo: setup
	$(VENV)/bin/losslab reproduce --preset $(PRESET) --out reports/$(PRESET)
	@echo "report: reports/$(PRESET)/report.html"

test: setup-test
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

# The loss library's unit tests alone: what a contributor runs before every commit.
test-fast: setup-test
	$(PY) -m pytest tests/unit $(PYTEST_ARGS) -q

lint: setup-test
	$(VENV)/bin/ruff check .

# The documentation site (Sphinx), strict: a warning or a broken reference fails the build.
DOCS_OUT ?= build/docs
docs: setup-test
	$(PY) -m sphinx -W --keep-going -E -q -b html docs $(DOCS_OUT)
	@echo "docs: $(DOCS_OUT)/index.html"

bench: setup-test
	$(VENV)/bin/losslab bench --json reports/bench.json

clean:
	rm -rf $(VENV) reports build *.egg-info src/*.egg-info
