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
# Two test processes by default (NOETL_TEST_PROCESSES=0 runs in this one): most of the suite's time
# is waiting on real servers, workers and subprocesses, so two processes finish sooner even on 2 cores.
# --dist loadfile keeps a module's tests (and its module-scoped deployment) in one process.
processes="${NOETL_TEST_PROCESSES:-2}"
if [ "$processes" = "0" ]; then
  python -m pytest -q "$@"
else
  python -m pytest -q -n "$processes" --dist loadfile "$@"
fi
status=$?
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
