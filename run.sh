#!/usr/bin/env bash
# Runs the studio on http://localhost:8501 (SQLite and ./data by default; see README).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh requirements.txt
echo "Preparing the data folder (the demo project is built on first start) ..."
.venv/bin/python -m core demo build --if-empty
exec .venv/bin/python scripts/serve.py "$@"
