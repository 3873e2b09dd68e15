# Creation King: the two commands of the README, plus the tools around them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test check fmt triton-venv triton-dev bench schema clean

# llama-cpp-python builds from source on a first install (4-6 minutes on 2 cores; pip's wheel
# cache keeps it): portable AVX2 code, no OpenMP (its spinning threads), no multimodal part.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON \
	-DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_OPENMP=OFF
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

$(VENV)/.stamp-run: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo "installing (a first install builds llama.cpp: about 5 minutes, once)"
	$(PY) -m pip install --quiet -e '.[local]'
	touch $@

$(VENV)/.stamp-test: pyproject.toml $(VENV)/.stamp-run
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

## Serve embedded mode (no services needed) on $(HOST):$(PORT).
run: $(VENV)/.stamp-run
	$(VENV)/bin/creation-king serve --host $(HOST) --port $(PORT)

## Install test dependencies and the local Triton, then run the whole suite.
test: $(VENV)/.stamp-test
	@bash tests/triton/setup.sh || echo "make test: no local Triton; its tests will skip (CI requires it)"
	$(PY) -m pytest $(PYTEST_ARGS)

## Lint, format check, strict typing, and the schema contract (no unintended breaking change).
check: $(VENV)/.stamp-test
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/creation-king check-schema

fmt: $(VENV)/.stamp-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## The local Triton server (PyTriton, CPU) with the `writer` model, on gRPC port 8001.
triton-venv:
	bash tests/triton/setup.sh

triton-dev: triton-venv
	.venv-triton/bin/python tests/triton/server.py --grpc-port 8001 --http-port 8002 --metrics-port 8003

## Benchmarks: ratios against baselines measured in the same run.
bench: $(VENV)/.stamp-test triton-venv
	$(PY) -m bench

## Rewrite schema/schema.graphql from the code.
schema: $(VENV)/.stamp-run
	$(VENV)/bin/creation-king export-schema

clean:
	rm -rf $(VENV) .venv-triton .data .mypy_cache .ruff_cache .pytest_cache
