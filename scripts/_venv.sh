# Shared by book.sh and test.sh: make .venv (once) and install the project with the given extras.
# Usage: source scripts/_venv.sh EXTRAS   (e.g. "book" or "book,test")
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
  done
fi
"$python" - <<'PY' || { echo "error: Python 3.10 or newer is needed (set PYTHON=/path/to/python3.11)" >&2; exit 2; }
import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$python" --version)" >&2
  "$python" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
stamp=".venv/.installed-$1-$(python - <<'PY'
import hashlib, sys
text = open("pyproject.toml", "rb").read() + sys.version.encode()
print(hashlib.sha256(text).hexdigest()[:16])
PY
)"
if [ ! -f "$stamp" ]; then
  echo "installing the project with extras [$1] (first time: a few minutes, torch is large)" >&2
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -e ".[$1]"
  touch "$stamp"
fi
