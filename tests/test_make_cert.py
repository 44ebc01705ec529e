"""scripts/make_cert.sh makes a certificate and key that a TLS server (Streamlit's) can load."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is missing")
def test_make_cert_names_the_hosts_and_loads_as_a_server_certificate(tmp_path: Path) -> None:
    done = subprocess.run(["bash", "scripts/make_cert.sh", "studio.local", "192.168.1.20"], cwd=ROOT,
                          env={**os.environ, "CERT_DIR": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--server.sslCertFile" in done.stdout
    text = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "studio.crt"), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "DNS:studio.local" in text and "IP Address:192.168.1.20" in text
    assert "TLS Web Server Authentication" in text
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "studio.crt", tmp_path / "studio.key")  # raises when they do not match
    assert (tmp_path / "studio.key").stat().st_mode & 0o077 == 0  # the key is private
