#!/usr/bin/env bash
# Runs the studio on http://localhost:8501 (SQLite and ./data by default; see README);
# ./run.sh api serves the REST API on http://127.0.0.1:8000 instead (docs at /docs).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh requirements.txt
echo "Preparing the data folder (the demo project is built on first start) ..."
.venv/bin/python -m core demo build --if-empty
.venv/bin/python scripts/first_admin.py  # first start: the admin's one-time password, on this terminal only
if [ "${1:-}" = "api" ]; then  # ./run.sh api [--host H] [--port P]: the REST API instead of the pages
    shift
    exec .venv/bin/python -m core api "$@"
fi
exec .venv/bin/python scripts/serve.py "$@"
