# dermsynth: every target a newcomer or CI needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements/dev.txt requirements/*.in 2>/dev/null | sha256sum | cut -c1-12)

DATA ?= data/isic-demo
RUN ?= runs/demo
MODEL ?= models/demo
RESOLUTION ?= 64
EPOCHS ?= 25

.PHONY: help setup protos check-protos lint format test demo train export serve validate bench bench-data base-image images e2e requirements clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): requirements/dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/dev.txt
	rm -f $(VENV)/.installed-*; touch $@

setup: $(STAMP)  ## make the virtual environment (.venv) with pinned dependencies

protos: $(STAMP)  ## regenerate the gRPC Python code from protos/*.proto
	$(PY) -m grpc_tools.protoc --proto_path=. --python_out=. --pyi_out=. --grpc_python_out=. \
		protos/dermsynth/v1/*.proto

check-protos: protos  ## fail if the committed generated code differs from `make protos`
	git diff --exit-code -- protos/

lint: $(STAMP)  ## ruff: lint and formatting (pinned in requirements/dev.txt; CI runs it before the tests)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)  ## ruff: fix what it can and format the tree
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

test: $(STAMP)  ## run the test suite (real models, real servers, real images)
	$(PY) -m pytest -q tests

demo: $(STAMP)  ## the whole chain on the bundled sample: train, export, serve, fetch, validate, release + verify
	PYTHON=$(PY) bash scripts/demo.sh

train: $(STAMP)  ## train a DCGAN: make train DATA=dir RUN=runs/x [RESOLUTION=64 EPOCHS=25]
	$(PY) -m trainer train --data $(DATA) --run $(RUN) --resolution $(RESOLUTION) --epochs $(EPOCHS)

export: $(STAMP)  ## export a run's generator to ONNX: make export RUN=runs/x MODEL=models/x
	$(PY) -m trainer export --run $(RUN) --out $(MODEL)

serve: $(STAMP)  ## serve a model over gRPC: make serve MODEL=models/x
	$(PY) -m serving serve --model $(MODEL) --port 50051

validate: $(STAMP)  ## validate a synthetic folder: make validate REAL=dir SYN=dir XCEPTION=file.onnx OUT=reports/x
	$(PY) -m validator validate --real $(REAL) --synthetic $(SYN) --features-model $(XCEPTION) --out $(OUT)

bench: $(STAMP)  ## benchmarks: training step, gRPC stream, feature extraction, replicas (ratios, same run), release
	$(PY) bench/train_bench.py
	$(PY) bench/serve_bench.py
	$(PY) bench/validator_bench.py
	$(PY) bench/replicas_bench.py
	$(PY) bench/release_bench.py

bench-data: $(STAMP)  ## full-archive scale (~40 min, ~3.5 GB in /tmp): preparation, RSS vs N, first step, validator
	$(PY) bench/data_bench.py

base-image:  ## build the local debootstrap base image (only where no registry serves python:3.11-slim)
	bash scripts/build_base_image.sh

images:  ## build dermsynth-train and dermsynth-serve (docker, else buildah; local base if no registry)
	bash scripts/images.sh

e2e: $(STAMP)  ## the chain inside the images: train, export, serve, fetch, validate (after make images)
	$(PY) -m pytest -m e2e tests/e2e -v --durations=0 --durations-min=1

requirements:  ## re-pin requirements/train.txt and serve.txt from the .in files (pip-tools)
	bash scripts/compile_requirements.sh

clean:  ## remove runs, models and caches (not the venv)
	rm -rf runs models out .pytest_cache
