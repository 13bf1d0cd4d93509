"""A throwaway self-signed certificate for TLS tests (openssl), no tests here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI


def make_cert(tmp: Path) -> tuple[Path, Path]:
    """``(cert, key)``: a self-signed certificate for 127.0.0.1, valid for a day."""
    openssl = shutil.which("openssl")
    if openssl is None:
        msg = "openssl not found: install the Debian package 'openssl'"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    return cert, key
