#!/usr/bin/env bash
# Make sure a Chromium the web envs can drive is installed; never fails the caller.
# Order: one already there (Debian's chromium, Playwright's own) -> Debian's package
# (as root, apt) -> Playwright's download. With none, the web tests skip with a reason.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if python - <<'PY' 2>/dev/null; then exit 0; fi
import sys
from agentgym_web.browser import find_browser
try:
    find_browser()
except Exception:
    sys.exit(1)
PY
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the web envs..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) && exit 0
fi
echo "trying Playwright's own Chromium..."
python -m playwright install chromium >/dev/null 2>&1 && exit 0
echo "warning: no Chromium could be installed; the web envs will not run and their tests will be skipped" >&2
exit 0
