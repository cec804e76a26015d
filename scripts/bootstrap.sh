#!/usr/bin/env bash
# Sets up everything `make demo` / `make test` need on a fresh Debian machine with Python 3.11:
# system FFmpeg (torchcodec and PyAV decode through it), optionally Chromium (browser tests),
# a virtual environment in .venv with the pinned requirements, and this package in editable mode.
# Idempotent: a stamp keyed by requirements.txt + pyproject.toml skips the pip step when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=0
for arg in "$@"; do
  case "$arg" in
    --with-browser) want_browser=1 ;;
    *) echo "bootstrap.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

apt_install() {
  local runner=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then runner=(sudo); else
      echo "bootstrap.sh: need root or sudo to apt-get install $*" >&2; exit 1; fi
  fi
  "${runner[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${runner[@]}" apt-get install -y -qq "$@" >/dev/null
}

missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
if [ "$want_browser" = 1 ] && ! [ -x /usr/bin/chromium ]; then missing+=(chromium); fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap.sh: installing system packages: ${missing[*]}"
  apt_install "${missing[@]}"
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
fi
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "bootstrap.sh: Python 3.11 is required (found $("$PY" --version 2>&1))" >&2; exit 1; }

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.savg-stamp-$(cat requirements.txt pyproject.toml | sha1sum | cut -c1-16)"
if ! [ -f "$stamp" ]; then
  echo "bootstrap.sh: installing pinned requirements into .venv (first run: a few minutes)"
  # Some images cap torch below our pin with a machine-wide constraints file in their pip config; the pins in
  # requirements.txt are what we test, so install them with pip's config files ignored (PyPI stays the index).
  pip_env=()
  if grep -qs '^torch' /etc/xdg/pip/constraints.txt /etc/pip/constraints.txt 2>/dev/null; then
    pip_env=(env PIP_CONFIG_FILE=/dev/null)
  fi
  "${pip_env[@]}" .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  "${pip_env[@]}" .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  rm -f .venv/.savg-stamp-*
  touch "$stamp"
fi
