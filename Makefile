# `make lab` opens the notebooks in JupyterLab; `make study` runs the notebook series (small
# profile); `make test` runs the test suite. Each target creates .venv if it is missing and
# installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The torch build this project is tested with on x86_64 / Python 3.11; elsewhere, e.g.
# `make TORCH="torch torchvision" test` or a CUDA build from pytorch.org.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
PROFILE ?= small
SOURCES := hierstudy tests benchmarks notebooks

# e.g. make lab LAB_ARGS=--allow-root, or LAB_ARGS="--no-browser --port 8899"
LAB_ARGS ?=

.PHONY: lab study test lint bench setup clean-runs
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH) -e ".[dev,notebooks]"
	$(VENV)/bin/hierstudy wordnet --install
	$(PY) -m ipykernel install --sys-prefix --name hierstudy --display-name "Python (hierstudy)"
	touch $@

# .jupyter/labconfig: a double-click opens notebooks/NN_*.py as a notebook (jupytext)
lab: setup
	JUPYTER_CONFIG_PATH="$(CURDIR)/.jupyter" $(VENV)/bin/jupyter lab $(LAB_ARGS)

study: setup
	$(VENV)/bin/hierstudy study --profile $(PROFILE)

test: lint
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b --quick || exit 1; done

clean-runs:
	rm -rf runs/smoke figures/smoke
