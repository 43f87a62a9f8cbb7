#!/usr/bin/env bash
# Run NoETL's whole test suite (the command CI runs). Installs what is missing first.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv || exit 1
fi
.venv/bin/python -m pip install --quiet --quiet --disable-pip-version-check --no-input -e '.[dev]' || exit 1
./scripts/install-postgres.sh || echo "warning: PostgreSQL binaries unavailable; PostgreSQL tests will be skipped" >&2
./scripts/install-chromium.sh || true  # the web console's browser tests skip (and say so) without it

export PATH="$PWD/.venv/bin:$PATH"
ruff check noetl tests || exit 1
mypy noetl || exit 1
python -m pytest -q "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
