# Sourced by scripts/run and scripts/test: create the virtualenv and install the
# project (with the dev extra) when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.cfai-installed"
# pip on some machines warns about every configured local index it cannot
# find; those lines say nothing about this install.
pip_install() {
  "$VENV/bin/python" -m pip install --quiet "$@" 2> >(grep -v "^WARNING: Location '.*' is ignored" >&2)
}
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo "Installing cfai and its dependencies into $VENV (the first time takes a minute)..." >&2
  pip_install --upgrade pip
  pip_install -e ".[dev]"
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
