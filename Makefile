# Every target depends on `setup`, so a fresh clone needs nothing but `make <target>`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Bytecode is written at first import (pip --no-compile), into the venv, never into the sources.
export PYTHONDONTWRITEBYTECODE :=
export PYTHONPYCACHEPREFIX := $(abspath $(VENV))/pycache
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
# One rule for all commands: `cli --make` reads the make variables cli/main.py's OPTIONS names; ARGS="--flag v".
COMMANDS := methods notebook check-notebooks mock dryrun submission submit eval leaderboard references compare agree tune

.PHONY: setup $(COMMANDS) test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name unlearnkit --display-name "Python (unlearnkit)" >/dev/null
	@[ -f $(FASHION_MNIST) ] || if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) || echo "note: could not install dataset-fashion-mnist; Fashion-MNIST will come from torchvision's download or --data-root"; \
	else echo "note: Fashion-MNIST not found at $(FASHION_MNIST); install Debian's dataset-fashion-mnist or pass --data-root"; fi
	touch $(STAMP)

$(COMMANDS): setup
	$(PY) -m cli --make $@ $(ARGS)

test: setup check-notebooks
	$(PY) -m pytest -q -n 2 --dist worksteal

lint: setup
	$(PY) -m ruff check .

bench: setup
	$(PY) benchmarks/bench_metric.py

clean:
	rm -rf submissions/*/ .pytest_cache
