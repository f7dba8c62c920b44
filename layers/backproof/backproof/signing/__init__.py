"""Signatures over what a backup's proof rests on: its manifest and every verification
report. A sibling of `store` and `pg`: it knows keys and statements, never where objects
live (jobs/signatures.py puts the two together).

`Signing` is what a command was given: a signer (a local private key or a KMS key) signs
what is written; a public key (the signer's own, a PEM file, or a KMS key's) checks what is
read. Neither: signing is not configured, and signatures are reported as not checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from ..errors import ConfigurationError
from .envelope import Envelope, Statement, canonical, sha256_hex
from .keys import (
    ALGORITHMS,
    KmsSigner,
    LocalSigner,
    PublicKey,
    Signer,
    kms_public_key,
    sign,
)

__all__ = [
    "ALGORITHMS",
    "Envelope",
    "KmsSigner",
    "LocalSigner",
    "PublicKey",
    "Signer",
    "Signing",
    "Statement",
    "canonical",
    "kms_public_key",
    "open_signing",
    "sha256_hex",
    "sign",
]


@dataclass(frozen=True)
class Signing:
    """How a command signs what it writes (`signer`) and checks what it reads (`verifier`)."""

    signer: Signer | None = None
    verifier: PublicKey | None = None


def open_signing(
    *,
    signing_key: Path | None = None,
    verify_key: Path | None = None,
    kms_key_id: str | None = None,
    kms_client: Any = None,
    sign_with_kms: bool = True,
) -> Signing | None:
    """The signing a command was configured with, or None. One source of keys only: a local
    private key (which also verifies), a public key (verifies only), or a KMS key (signs
    unless `sign_with_kms` is False, and verifies with its public key)."""
    given = [n for n, v in (("signing key", signing_key), ("verify key", verify_key)) if v]
    if kms_key_id:
        given.append("KMS signing key")
    if len(given) > 1 and not (given == ["signing key", "verify key"]):
        raise ConfigurationError(
            f"give one source of signing keys, not {' and '.join(given)}: a private key file "
            "(--signing-key), a public key file (--verify-key) or a KMS key "
            "(--signing-kms-key-id)"
        )
    if kms_key_id:
        client = kms_client or boto3.client("kms")
        if sign_with_kms:
            signer = KmsSigner(client, kms_key_id)
            return Signing(signer, signer.public_key)
        return Signing(None, kms_public_key(client, kms_key_id).public_key)
    if signing_key:
        local = LocalSigner.from_file(signing_key)
        verifier = PublicKey.from_file(verify_key) if verify_key else local.public_key
        if verifier.fingerprint != local.public_key.fingerprint:
            raise ConfigurationError(
                f"--verify-key {verify_key} is not the public half of --signing-key {signing_key}"
            )
        return Signing(local, verifier)
    if verify_key:
        return Signing(None, PublicKey.from_file(verify_key))
    return None
