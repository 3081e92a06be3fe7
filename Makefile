# Newcomer commands: `make demo` (set up, then run the whole pipeline on the sample data) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)

# Dagster keeps runs, metadata and lineage here; without it every command starts from nothing.
export DAGSTER_HOME := $(CURDIR)/.dagster
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Nothing is downloaded at run time by default; set HF_HUB_OFFLINE=0 to let a real model download.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: bench setup demo test test-all lint validate-defs format ui mlflow-ui dvc-yaml repro status sample clean-outputs prune

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU wheel of torch, first: a bare `torch` requirement would pull GBs of CUDA wheels.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet ".[dev,tune]"
	# dvc -> hydra-core pins antlr4 4.9, but dagster's asset-selection parser (`--select`, the UI's
	# selection box) needs the 4.13 runtime. Only DVC's optional Hydra composition, unused here, needs 4.9.
	$(PY) -m pip install --quiet --no-deps "antlr4-python3-runtime==4.13.2"
	rm -f $(VENV)/.installed-* && touch $@

demo: setup
	$(PY) -m pipelines.materialize --all
	@echo
	@echo "Done. Where to look:"
	@echo "  make ui                        Dagster UI on http://127.0.0.1:3000 (asset graph, metadata, runs)"
	@echo "  data/rejected_examples.parquet every rejected row with its reason"
	@echo "  models/evaluation_report.json  base vs candidate vs champion metrics"
	@echo "  models/merged_model/           the champion merged into its base (AutoModelForCausalLM)"
	@echo "  dvc status / dvc.lock          data and model versions;  mlflow.db: the registry"

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -m ""

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MAKE) --no-print-directory validate-defs

# The definitions load (what `dagster dev` and the daemon do), in a throwaway Dagster home, offline.
# The module comes from [tool.dagster] in pyproject.toml.
validate-defs: setup
	home=$$(mktemp -d) && trap 'rm -rf "$$home"' EXIT && \
		DAGSTER_HOME="$$home" HF_HUB_OFFLINE=1 $(VENV)/bin/dagster definitions validate

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# dagster dev finds the definitions through [tool.dagster] in pyproject.toml.
ui: setup
	$(PY) -m pipelines.instance >/dev/null
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000

# The MLflow UI on http://127.0.0.1:5000: registered versions, the champion/previous aliases, lineage tags,
# each candidate run's metrics and params, and its artifacts (adapter, lineage/dvc_lock_inputs.json).
# The pipeline uses mlflow-skinny, which has no UI server; the full `mlflow` package (pyproject.toml's
# `mlflow-ui` extra) goes into its own venv, .venv-mlflow/ (about 850 MB), because it pins pyarrow<26,
# which would change the pipeline's Parquet bytes. Its version is the installed mlflow-skinny's, so
# both read the same database schema. `registry status` first repoints a moved or copied mlflow.db.
MLFLOW_VENV := .venv-mlflow
MLFLOW_PORT ?= 5000
mlflow-ui: setup
	@version=$$($(PY) -c "import importlib.metadata as m; print(m.version('mlflow-skinny'))"); \
	installed=$$($(MLFLOW_VENV)/bin/python -c "import importlib.metadata as m; print(m.version('mlflow'))" 2>/dev/null); \
	if [ "$$installed" != "$$version" ]; then \
		echo "Installing mlflow==$$version into $(MLFLOW_VENV)/ (once)"; \
		python3 -m venv $(MLFLOW_VENV) && $(MLFLOW_VENV)/bin/pip install --quiet "mlflow==$$version"; \
	fi
	MLFLOW_TRACKING_URI=sqlite:///$(CURDIR)/mlflow.db $(PY) -m pipelines.registry status
	$(MLFLOW_VENV)/bin/mlflow server --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
		--default-artifact-root $(CURDIR)/mlartifacts --host 127.0.0.1 --port $(MLFLOW_PORT)

# Regenerate dvc.yaml from the stage table (assets/stages.py); tests/test_dvc_sync.py fails on drift.
dvc-yaml: setup
	$(PY) -m pipelines.dvc_yaml

repro: setup
	$(VENV)/bin/dvc repro

status: setup
	$(VENV)/bin/dvc status

# What params.yaml's `retention:` policy would delete (registry versions, DVC cache, Dagster run history),
# with sizes; `make prune APPLY=1` deletes it.
prune: setup
	$(PY) -m pipelines.retention $(if $(APPLY),--apply)

sample: setup
	$(PY) data/sample/make_sample.py

# Speed and memory figures (ratios against a baseline measured in the same script); each writes
# benchmarks/results/*.json. Minutes, not seconds: not part of `make test`.
bench: setup
	$(PY) -m pip install --quiet ".[bench]"
	$(PY) benchmarks/dedup.py
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/backtranslation.py
	$(PY) benchmarks/pipeline_timing.py
	$(PY) benchmarks/merge_tolerance.py
	$(PY) benchmarks/clean_stage.py
	$(PY) benchmarks/registry_faults.py
	$(PY) benchmarks/training_threads.py
	$(PY) benchmarks/train_device_defaults.py
	@if [ -d ../shared/data/oasst2 ]; then $(PY) benchmarks/oasst2_clean.py; \
	else echo "benchmarks/oasst2_clean.py skipped: ../shared/data/oasst2 is absent"; fi
	$(PY) benchmarks/train.py
