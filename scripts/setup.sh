#!/usr/bin/env bash
# Shared set-up of run.sh and test.sh: a .venv at the project root with the pinned requirements.
# Idempotent: reinstalls only when a requirements file changed (a stamp holds their hash).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUIREMENTS="${1:-requirements.txt}"

python_for_venv() {
  # torch 2.14.1 + torchvision 0.29.1 wheels exist for CPython 3.11; prefer it when present.
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then echo "$candidate"; return; fi
  done
  echo "python3 not found: install Python 3.11" >&2; exit 1
}

cd "$ROOT"
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv ..."
  "$(python_for_venv)" -m venv .venv
fi
name="$(basename "$REQUIREMENTS" .txt)"
stamp=".venv/.installed-$name-$(cat requirements*.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "Installing $REQUIREMENTS into .venv (first time: a few minutes for PyTorch) ..."
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$REQUIREMENTS"
  rm -f .venv/.installed-"$name"-*
  touch "$stamp"
fi
