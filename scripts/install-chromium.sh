#!/usr/bin/env bash
# Install the headless Chromium the browser tests drive (Debian's package; Playwright never
# downloads a browser of its own). Quiet when it is already there; a warning, not a failure,
# when it cannot be installed (the browser tests then skip and say why).
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; } >/tmp/noetl-install-chromium.log 2>&1
fi
command -v chromium >/dev/null 2>&1 || {
  echo "warning: chromium is not installed (see /tmp/noetl-install-chromium.log); browser tests will be skipped" >&2
  exit 1
}
