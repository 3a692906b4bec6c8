# Every target depends on `setup`, so a fresh clone needs nothing but `make <target>`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CLI := $(PY) -m cli
STAMP := $(VENV)/.installed
METHOD ?= finetune
A ?= ftsu
B ?= finetune
PRESET ?=
# Empty: the command line's default preset (local_eval/scoring/presets.py: DEFAULT_PRESET).
PRESET_ARG = $(if $(PRESET),--preset $(PRESET),)
EXECUTOR ?= local
RAY_ADDRESS ?=
BOARDS ?= docs/leaderboard-faithful_groups.md docs/leaderboard-cpu.md
# RAY_ADDRESS only counts with EXECUTOR=ray: an exported address never sends a local run away.
EXEC_ARGS = --executor $(EXECUTOR) $(if $(filter ray,$(EXECUTOR)),$(if $(RAY_ADDRESS),--ray-address $(RAY_ADDRESS),),)
N_CHECKPOINTS ?= 2
PUSH ?=
TRIALS ?= 40
SET ?=
SET_ARGS := $(foreach s,$(SET),--set $(s))
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup notebook check-notebooks dryrun submission submit eval leaderboard references compare agree tune test lint methods bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name unlearnkit --display-name "Python (unlearnkit)" >/dev/null
	@if [ ! -f $(FASHION_MNIST) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	      || echo "note: could not install dataset-fashion-mnist; Fashion-MNIST will come from torchvision's download or --data-root"; \
	  else \
	    echo "note: Fashion-MNIST not found at $(FASHION_MNIST); install Debian's dataset-fashion-mnist or pass --data-root"; \
	  fi; \
	fi
	touch $(STAMP)

methods: setup
	$(CLI) methods

notebook: setup
	$(CLI) notebook $(METHOD) $(SET_ARGS)

check-notebooks: setup
	$(CLI) check-notebooks

dryrun: setup
	$(CLI) dryrun $(METHOD) $(SET_ARGS) --n-checkpoints $(N_CHECKPOINTS)

submission: setup
	$(CLI) submission $(METHOD) $(SET_ARGS) --n-checkpoints $(N_CHECKPOINTS)

submit: setup
	$(CLI) submit $(METHOD) $(SET_ARGS) $(if $(PUSH),--push,)

eval: setup
	$(CLI) eval $(METHOD) $(SET_ARGS) $(PRESET_ARG) $(if $(SPLIT),--split $(SPLIT),) $(if $(REQUESTS),--requests $(REQUESTS),) $(if $(FEDERATED),--federated $(FEDERATED),) $(if $(N),--n-models $(N),) $(if $(SPLITS),--splits $(SPLITS),) $(if $(BOOTSTRAP),--bootstrap $(BOOTSTRAP),) $(EXEC_ARGS)

leaderboard: setup
	$(CLI) leaderboard $(PRESET_ARG) $(if $(SPLIT),--split $(SPLIT),) $(if $(REQUESTS),--requests $(REQUESTS),) $(if $(FEDERATED),--federated $(FEDERATED),) $(if $(METHODS),--methods $(METHODS),) $(if $(N),--n-models $(N),) $(if $(SPLITS),--splits $(SPLITS),) $(if $(BOOTSTRAP),--bootstrap $(BOOTSTRAP),) $(EXEC_ARGS)

references: setup
	$(CLI) references $(PRESET_ARG) $(if $(N),--n-models $(N),) $(if $(STATUS),--status,) $(EXEC_ARGS)

compare: setup
	$(CLI) compare $(A) $(B) $(PRESET_ARG) $(if $(SPLIT),--split $(SPLIT),) $(if $(REQUESTS),--requests $(REQUESTS),) $(if $(FEDERATED),--federated $(FEDERATED),) $(if $(N),--n-models $(N),) $(if $(BOOTSTRAP),--bootstrap $(BOOTSTRAP),) $(EXEC_ARGS)

agree: setup
	$(CLI) agree $(BOARDS) $(foreach j,$(SPLIT),--split $(j)) $(foreach m,$(METRIC),--metric $(m)) $(if $(PLOT),--plot $(PLOT),)

tune: setup
	$(CLI) tune $(METHOD) $(PRESET_ARG) --trials $(TRIALS) $(if $(SPACE),--space "$(SPACE)",) $(if $(WORKERS),--workers $(WORKERS),) $(if $(N),--n-models $(N),) $(if $(SEED),--seed $(SEED),) $(if $(FRESH),--fresh,) $(EXEC_ARGS)

test: setup check-notebooks
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .

bench: setup
	$(PY) benchmarks/bench_metric.py

clean:
	rm -rf submissions/*/ .pytest_cache
