"""A throwaway certificate authority and a server certificate for local test clusters, so tests
connect with TLS (and `verify-full`) the way deployed tasks connect to RDS."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from backproof.pg.cluster import ServerCertificate


@dataclass(frozen=True)
class TestAuthority:
    ca_file: Path
    server: ServerCertificate


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_authority(directory: Path) -> TestAuthority:
    """A CA (P-256, one day) and a server certificate for localhost / 127.0.0.1 signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=directory)
    _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-days",
        "1",
        "-subj",
        "/CN=backproof test CA",
        "-out",
        "ca.crt",
        cwd=directory,
    )
    _openssl(
        "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key", cwd=directory
    )
    _openssl(
        "req",
        "-new",
        "-key",
        "server.key",
        "-subj",
        "/CN=localhost",
        "-out",
        "server.csr",
        cwd=directory,
    )
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
        cwd=directory,
    )
    return TestAuthority(
        directory / "ca.crt", ServerCertificate(directory / "server.crt", directory / "server.key")
    )
