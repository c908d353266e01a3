#!/usr/bin/env bash
# Build the book from a fresh clone: `bash scripts/book.sh [pathbook build options]`.
# Creates .venv, installs the project with its [book] extra, runs `pathbook build` (quick profile
# unless --profile full is given). The HTML lands in _build/html/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" book
exec pathbook build "$@"
