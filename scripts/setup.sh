#!/usr/bin/env bash
# Set up NoETL in ./.venv and run a real playbook on the embedded store (no server, no database).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Quiet for a newcomer: errors only, no version nag (pip still fails loudly on a real problem).
PIP_QUIET=(--quiet --quiet --disable-pip-version-check --no-input)
.venv/bin/python -m pip install "${PIP_QUIET[@]}" --upgrade pip
.venv/bin/python -m pip install "${PIP_QUIET[@]}" -e '.[dev]'

export NOETL_HOME=${NOETL_HOME:-$HOME/.noetl}
echo "NoETL installed in .venv; running examples/hello/hello.yaml (store: $NOETL_HOME/noetl.db)"
.venv/bin/noetl run examples/hello/hello.yaml
