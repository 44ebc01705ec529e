#!/usr/bin/env bash
# Sets up everything the tests need (Python packages, Chromium, PostgreSQL, Mosquitto) and runs them all.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh requirements-test.txt

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v openssl >/dev/null 2>&1 || need+=(openssl)  # scripts/make_cert.sh and its test
command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)  # the line tests' MQTT broker (tests/line)
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing ${need[*]} with apt-get ..."
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi

echo "Linting (ruff) ..."
.venv/bin/ruff check --quiet .
exec .venv/bin/python -m pytest "$@"
