#!/usr/bin/env bash
# Creates .venv-triton at the repo root: Debian's Python 3.11 plus nvidia-pytriton, which
# carries a CPU-capable Triton Inference Server. Its Python backend stub loads the system
# libpython3.11, so the venv must come from /usr/bin/python3.11: a pyenv/uv Python of another
# patch release fails inside the stub.
# Idempotent: does nothing when .venv-triton/.stamp holds the pinned requirement.
set -euo pipefail

PYTHON=/usr/bin/python3.11
REQUIREMENT="nvidia-pytriton==0.7.0"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv-triton"
stamp="$venv/.stamp"

if [[ ! -x "$PYTHON" ]]; then
    echo "setup.sh: $PYTHON not found; the Triton test server needs Debian's python3.11" \
        "(apt-get install python3.11 python3.11-venv)" >&2
    exit 1
fi

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$REQUIREMENT" ]]; then
    echo "setup.sh: $venv is up to date ($REQUIREMENT)"
    exit 0
fi

# A venv made by another interpreter would fail at model load, so rebuild it from scratch.
if [[ -f "$venv/pyvenv.cfg" ]] && ! grep -qx "home = /usr/bin" "$venv/pyvenv.cfg"; then
    echo "setup.sh: $venv was not made with $PYTHON; recreating it"
    "$PYTHON" -m venv --clear "$venv"
else
    "$PYTHON" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$REQUIREMENT"
printf '%s\n' "$REQUIREMENT" >"$stamp"
echo "setup.sh: installed $REQUIREMENT into $venv"
