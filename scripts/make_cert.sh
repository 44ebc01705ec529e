#!/usr/bin/env bash
# Make a self-signed certificate so that tablets on the LAN may open their camera on the studio.
#   scripts/make_cert.sh [host-or-ip ...]      (default: this machine's name and LAN addresses)
# Writes certs/studio.crt and certs/studio.key (or into $CERT_DIR) (valid 825 days, the longest iOS accepts), then
# prints how to serve with them. Browsers only open a camera on a secure origin: https:// or localhost.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v openssl >/dev/null || { echo "openssl is missing: apt-get install -y openssl" >&2; exit 1; }

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=("$(hostname)" localhost 127.0.0.1)
  for ip in $(hostname -I 2>/dev/null || true); do names+=("$ip"); done
fi
san=""
for name in "${names[@]}"; do
  if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then san+="IP:$name,"; else san+="DNS:$name,"; fi
done
san="${san%,}"

out="${CERT_DIR:-certs}"
mkdir -p "$out"
openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 825 \
  -keyout "$out/studio.key" -out "$out/studio.crt" \
  -subj "/CN=${names[0]} (inspection studio)" \
  -addext "subjectAltName=$san" \
  -addext "basicConstraints=critical,CA:FALSE" \
  -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
  -addext "extendedKeyUsage=serverAuth" 2>/dev/null
chmod 600 "$out/studio.key"

echo "certificate: $out/studio.crt (for: $san)"
echo "key:         $out/studio.key"
echo "SHA-256 fingerprint (compare it on the tablet):"
openssl x509 -in "$out/studio.crt" -noout -fingerprint -sha256
echo
echo "serve over HTTPS:"
echo "  .venv/bin/python scripts/serve.py --server.sslCertFile $out/studio.crt --server.sslKeyFile $out/studio.key --server.address 0.0.0.0"
