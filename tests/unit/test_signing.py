"""Signatures over stored objects: local key files and KMS asymmetric keys (moto), verified
offline with the public key alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from moto import mock_aws

from backproof.errors import ConfigurationError, IntegrityError
from backproof.signing import Envelope, LocalSigner, PublicKey, Statement, open_signing, sign
from backproof.signing.keys import KmsSigner, kms_public_key

BACKUP = "20261121T050312.123Z-1a2b3c"
KEY = f"p/backups/shop/2026/11/21/{BACKUP}/manifest.json"


def write_key(path: Path, key: Any) -> tuple[Path, Path]:
    """(private PEM, public PEM) files for `key`."""
    private = path / "signing.pem"
    public = path / "signing.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def statement(data: bytes = b'{"a": 1}', **changes: Any) -> Statement:
    return replace(Statement.of("manifest", BACKUP, "shop", KEY, data), **changes)


@pytest.fixture
def kms() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("kms")


@pytest.mark.parametrize(
    ("key", "algorithm"),
    [
        (ec.generate_private_key(ec.SECP256R1()), "ECDSA_SHA_256"),
        (ec.generate_private_key(ec.SECP384R1()), "ECDSA_SHA_384"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSASSA_PSS_SHA_256"),
    ],
    ids=["ec-p256", "ec-p384", "rsa-2048"],
)
def test_a_local_key_file_signs_and_its_public_key_alone_verifies(
    tmp_path: Path, key: Any, algorithm: str
) -> None:
    # Given a private key file and its public half
    private, public = write_key(tmp_path, key)
    signing = open_signing(signing_key=private)
    assert signing is not None and signing.signer is not None
    # When a statement is signed and stored as JSON
    stored = sign(signing.signer, statement()).to_json()
    # Then the public key file alone verifies it, and names the algorithm and key
    envelope = Envelope.from_json(stored)
    checker = PublicKey.from_file(public)
    assert envelope.algorithm == algorithm
    assert envelope.key_id == checker.key_id == checker.fingerprint
    assert checker.problem(envelope) == ""
    # and a signature made for another statement does not carry over
    forged = replace(envelope, statement=statement(b'{"a": 2}'))
    assert "does not verify" in checker.problem(forged)


def test_a_statement_names_what_differs_from_the_object_found() -> None:
    # Given a statement signed for backup A's manifest
    signed = statement()
    # When the object found sits under another backup's id, with other bytes
    other = "20261122T050312.123Z-4d5e6f"
    found = statement(b'{"a": 2}', backup_id=other, key=KEY.replace(BACKUP, other))
    # Then each difference is named
    differences = " ".join(signed.differences(found))
    assert "backup_id" in differences and "key" in differences and "sha256" in differences


def test_a_garbled_signature_object_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="not valid JSON"):
        Envelope.from_json(b"{nope")
    with pytest.raises(IntegrityError, match=r"backproof\.signature"):
        Envelope.from_json(b'{"format": "other"}')


@pytest.mark.parametrize(
    ("spec", "algorithm"),
    [("ECC_NIST_P256", "ECDSA_SHA_256"), ("RSA_2048", "RSASSA_PSS_SHA_256")],
)
def test_a_kms_asymmetric_key_signs_and_its_public_key_verifies_offline(
    kms: Any, spec: str, algorithm: str
) -> None:
    # Given a KMS signing key (moto)
    key_id = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    # When backproof signs a statement with it (kms:Sign)
    signer = KmsSigner(kms, key_id)
    envelope = sign(signer, statement())
    # Then its public key (kms:GetPublicKey) verifies it without KMS's help
    public = kms_public_key(kms, key_id).public_key
    assert envelope.algorithm == algorithm
    assert public.problem(Envelope.from_json(envelope.to_json())) == ""
    # and KMS agrees (kms:Verify on the same message)
    assert kms.verify(
        KeyId=key_id,
        Message=envelope.statement.message(),
        Signature=envelope.signature,
        SigningAlgorithm=algorithm,
    )["SignatureValid"]
    # and a changed statement does not verify
    assert public.problem(replace(envelope, statement=statement(b"other"))) != ""


def test_a_kms_key_that_does_not_sign_is_refused(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["Arn"]  # symmetric, ENCRYPT_DECRYPT
    with pytest.raises(ConfigurationError, match="SIGN_VERIFY"):
        open_signing(kms_key_id=key_id, kms_client=kms)


def test_a_kms_key_read_only_for_checking_never_signs(kms: Any) -> None:
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    signing = open_signing(kms_key_id=key_id, kms_client=kms, sign_with_kms=False)
    assert signing is not None and signing.signer is None and signing.verifier is not None


def test_key_sources_are_not_mixed(tmp_path: Path) -> None:
    private, _ = write_key(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    other = tmp_path / "other"
    other.mkdir()
    _, wrong_public = write_key(other, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigurationError, match="one source"):
        open_signing(signing_key=private, kms_key_id="alias/x")
    with pytest.raises(ConfigurationError, match="not the public half"):
        open_signing(signing_key=private, verify_key=wrong_public)
    assert open_signing() is None


def test_unsupported_and_unreadable_keys_are_named(tmp_path: Path) -> None:
    private, _ = write_key(tmp_path, ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(ConfigurationError, match="EC"):
        LocalSigner.from_file(private)
    with pytest.raises(ConfigurationError, match="cannot read"):
        open_signing(verify_key=tmp_path / "missing.pem")
