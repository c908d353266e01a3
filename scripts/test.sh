#!/usr/bin/env bash
# Run the tests from a fresh clone: `bash scripts/test.sh [pytest options]`.
# Creates .venv, installs the project with its [book,test,classroom] extras, installs headless
# Chromium (Debian packages chromium + chromium-driver, for the browser test) when it is missing,
# then runs ruff (lint and format check) and pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" book,test,classroom
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser test" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "warning: no chromium on PATH and no root apt-get: the browser test will fail." >&2
    echo "         Install Chromium (Debian: apt-get install chromium) or set CHROMIUM=/path." >&2
  fi
fi
# style first: a lint or format error fails in seconds, before the long tests
ruff check --quiet . || { echo "ruff check failed: run 'ruff check --fix .' (see pyproject.toml)" >&2; exit 1; }
ruff format --check --quiet . || { echo "ruff format: run 'ruff format .'" >&2; exit 1; }
exec python -m pytest "$@"
