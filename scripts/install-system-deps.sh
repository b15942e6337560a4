#!/usr/bin/env bash
# System packages the project needs beyond Python 3.11 and make, for `make repro` (repro) or
# `make test` (test, the default: repro's and the tests' own):
#   python3-venv  `python3 -m venv` (Debian ships venv's ensurepip apart)          repro, test
#   libgl1, libglib2.0-0  OpenCV's wheel links libGL and GLib: `import cv2` fails without
#                 them (faces, landmarks, the QA page)                              repro, test
#   espeak-ng     speech for the IEMOCAP- and MOSEI-shaped miniatures              test
#   chromium      the QA page opened in a headless browser                         test
# What is already there (found by command or library, whatever the distribution) is left
# alone; the rest is installed with apt-get when run as root on Debian/Ubuntu. Otherwise the
# script names what is missing and the command to install it, and fails.
set -euo pipefail
what=${1:-test}
case $what in repro | test) ;; *) echo "usage: $0 [repro|test]" >&2; exit 2 ;; esac
PY=${PY:-python3}

has_lib() { ldconfig -p 2>/dev/null | grep -q "[[:space:]]$1 "; }
missing=()
if command -v "$PY" >/dev/null 2>&1 && ! "$PY" -c "import ensurepip" >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
has_lib libGL.so.1 || missing+=(libgl1)
has_lib libgthread-2.0.so.0 || missing+=(libglib2.0-0)
if [ "$what" = test ]; then
  command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
    || missing+=(chromium)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  exit 0
fi
echo "missing system packages for \`make $what\`: ${missing[*]}" >&2
echo "install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}), then run make again" >&2
exit 1
