#!/usr/bin/env bash
# Runs the test suite in the setup venv (scripts/setup.sh makes it). Extra arguments go to pytest,
# e.g. scripts/test.sh test/ros -k messages. pytest exits non-zero when no test was collected.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PMP_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "no venv at $VENV: run scripts/setup.sh first" >&2
  exit 2
fi
cd "$ROOT"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"  # tests never reach a model hub
exec "$VENV/bin/python" -m pytest "$@"
