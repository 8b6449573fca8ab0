#!/usr/bin/env bash
# Install Debian's Chromium for the browser test (tests/test_browser.py drives it with Playwright's Python package,
# which is in the `dev` extra; Playwright's own browser download is not used). Safe to rerun. It never fails the
# build: where Chromium cannot be installed, the browser test skips and says so.
set -u
for c in "${SEMSTYLEGAN_CHROMIUM:-}" chromium chromium-browser google-chrome; do
  if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1; then echo "browser: $(command -v "$c")"; exit 0; fi
done
log=$(mktemp)
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else sudo=none; fi
  if [ "$sudo" != none ]; then
    echo "browser: installing Debian's chromium (apt-get)..."
    if ($sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium) >"$log" 2>&1; then
      echo "browser: $(command -v chromium)"; exit 0
    fi
    echo "browser: apt-get install chromium failed (log: $log); the browser test will skip"; exit 0
  fi
fi
echo "browser: cannot install Chromium here (needs apt-get and root); the browser test will skip."
echo "         Install chromium yourself or set SEMSTYLEGAN_CHROMIUM=/path/to/chrome."
exit 0
