#!/usr/bin/env bash
# System packages the test suite needs beyond Python: Chromium (the QA report's browser test).
# Installs with apt-get when run as root on Debian/Ubuntu; otherwise says what to install.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "note: install Chromium (Debian/Ubuntu: sudo apt-get install chromium) for the report test" >&2
fi
