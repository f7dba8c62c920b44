"""Keys that sign and keys that verify.

- A local private key (PEM file, EC P-256/P-384/P-521 or RSA): the CLI's `--signing-key`.
- A KMS asymmetric key (KeyUsage SIGN_VERIFY, ECC_NIST_* or RSA_*): the deployed task's; the
  private key never leaves KMS (kms:Sign).
- A public key (PEM file, or read once from KMS with kms:GetPublicKey) verifies either kind
  offline with `cryptography`: checking evidence needs no AWS access and no private key.

Algorithms carry KMS's names for local keys too, so one verifier reads both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ..errors import ConfigurationError, SigningFailed
from .envelope import Envelope, Statement

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}
# KMS's signing algorithm names: (key type, padding scheme, hash).
ALGORITHMS = {
    **{f"ECDSA_{h}": ("ec", "ecdsa", h) for h in _HASHES},
    **{f"RSASSA_PSS_{h}": ("rsa", "pss", h) for h in _HASHES},
    **{f"RSASSA_PKCS1_V1_5_{h}": ("rsa", "pkcs1", h) for h in _HASHES},
}
_EC_HASH = {256: "SHA_256", 384: "SHA_384", 521: "SHA_512"}
SUPPORTED = "an EC (P-256, P-384, P-521) or RSA key"


def _kind(key: Any) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return "ec"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "rsa"
    raise ConfigurationError(f"signing keys must be {SUPPORTED}, not {type(key).__name__}")


def default_algorithm(key: Any) -> str:
    """ECDSA with the curve's own hash size; RSA-PSS with SHA-256 (KMS's choices)."""
    if _kind(key) == "ec":
        size = _EC_HASH.get(key.curve.key_size)
        if size is None:
            raise ConfigurationError(f"EC curve {key.curve.name} is not supported: use P-256")
        return f"ECDSA_{size}"
    return "RSASSA_PSS_SHA_256"


def _scheme(algorithm: str, key_kind: str) -> tuple[Any, hashes.HashAlgorithm]:
    """(padding or ECDSA object, hash) for an algorithm; ValueError if it does not fit."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown signing algorithm {algorithm!r}")
    kind, scheme, hash_name = ALGORITHMS[algorithm]
    if kind != key_kind:
        raise ValueError(f"algorithm {algorithm} does not fit an {key_kind.upper()} key")
    digest = _HASHES[hash_name]()
    if scheme == "ecdsa":
        return ec.ECDSA(digest), digest
    if scheme == "pss":
        return padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.DIGEST_LENGTH), digest
    return padding.PKCS1v15(), digest


class PublicKey:
    """Verifies signatures; `key_id` is the KMS key's ARN or, for a file, its fingerprint."""

    def __init__(self, key: Any, key_id: str | None = None) -> None:
        self.kind = _kind(key)
        self.key = key
        self.fingerprint = "sha256:" + hashlib.sha256(self.der()).hexdigest()
        self.key_id = key_id or self.fingerprint

    @classmethod
    def from_pem(
        cls, data: bytes, *, where: str = "public key", key_id: str | None = None
    ) -> PublicKey:
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ConfigurationError(f"{where} is not a PEM public key: {exc}") from exc
        return cls(key, key_id)

    @classmethod
    def from_file(cls, path: Path) -> PublicKey:
        return cls.from_pem(_read(path, "public key"), where=f"public key {path}")

    def der(self) -> bytes:
        return bytes(
            self.key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def pem(self) -> str:
        return bytes(
            self.key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode("ascii")

    def problem(self, envelope: Envelope) -> str:
        """Why the envelope's signature does not verify with this key ("" when it does)."""
        try:
            scheme, digest = _scheme(envelope.algorithm, self.kind)
        except ValueError as exc:
            return str(exc)
        message = envelope.statement.message()
        try:
            if self.kind == "ec":
                self.key.verify(envelope.signature, message, scheme)
            else:
                if isinstance(scheme, padding.PSS):  # KMS's salt length may differ from ours
                    scheme = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO)
                self.key.verify(envelope.signature, message, scheme, digest)
        except InvalidSignature:
            who = "" if envelope.key_id == self.key_id else f" (signed by {envelope.key_id})"
            return f"the signature does not verify with key {self.key_id}{who}"
        return ""


class Signer(Protocol):
    key_id: str
    algorithm: str
    public_key: PublicKey

    def sign(self, message: bytes) -> bytes: ...


def sign(signer: Signer, statement: Statement) -> Envelope:
    return Envelope(statement, signer.algorithm, signer.key_id, signer.sign(statement.message()))


class LocalSigner:
    """A private key from a PEM file (unencrypted PKCS#8 or traditional)."""

    def __init__(self, key: Any) -> None:
        self.key = key
        self.public_key = PublicKey(key.public_key())
        self.key_id = self.public_key.key_id
        self.algorithm = default_algorithm(key)

    @classmethod
    def from_file(cls, path: Path) -> LocalSigner:
        data = _read(path, "signing key")
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError as exc:
            raise ConfigurationError(
                f"signing key {path} is encrypted; give an unencrypted PEM file readable only "
                "by the user running backproof"
            ) from exc
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ConfigurationError(f"signing key {path} is not a PEM private key: {exc}") from exc
        return cls(key)

    def sign(self, message: bytes) -> bytes:
        scheme, digest = _scheme(self.algorithm, self.public_key.kind)
        if self.public_key.kind == "ec":
            return bytes(self.key.sign(message, scheme))
        return bytes(self.key.sign(message, scheme, digest))


@dataclass
class KmsKey:
    """What kms:GetPublicKey says about a signing key."""

    key_id: str  # the ARN (as KMS answers)
    public_key: PublicKey
    algorithms: list[str]


def kms_public_key(client: Any, key_id: str) -> KmsKey:
    """The public half of a KMS signing key (kms:GetPublicKey); ConfigurationError if the key
    cannot be read or does not sign."""
    try:
        answer = client.get_public_key(KeyId=key_id)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise ConfigurationError(
            f"KMS signing key {key_id!r} cannot be read ({code or exc}); check "
            "--signing-kms-key-id and that kms:GetPublicKey is allowed"
        ) from exc
    except BotoCoreError as exc:
        raise ConfigurationError(f"cannot reach KMS to read signing key {key_id!r}: {exc}") from exc
    if answer.get("KeyUsage") != "SIGN_VERIFY":
        raise ConfigurationError(
            f"KMS key {key_id!r} has KeyUsage {answer.get('KeyUsage')}, not SIGN_VERIFY: "
            "create an asymmetric signing key (ECC_NIST_P256 or RSA)"
        )
    # KMS answers with the key's ARN (an emulator may answer the bare id: keep an ARN given).
    answered = str(answer.get("KeyId") or key_id)
    arn = key_id if key_id.startswith("arn:") and not answered.startswith("arn:") else answered
    try:
        key = serialization.load_der_public_key(bytes(answer["PublicKey"]))
    except (KeyError, ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigurationError(f"KMS key {key_id!r} returned no usable public key") from exc
    return KmsKey(arn, PublicKey(key, arn), list(answer.get("SigningAlgorithms") or []))


class KmsSigner:
    """Signs with a KMS asymmetric key: the private key never leaves KMS."""

    def __init__(self, client: Any, key_id: str) -> None:
        self.client = client
        info = kms_public_key(client, key_id)
        self.key_id = info.key_id
        self.public_key = info.public_key
        preferred = default_algorithm(info.public_key.key)
        usable = [a for a in info.algorithms if a in ALGORITHMS]
        if not usable:
            raise ConfigurationError(f"KMS key {key_id!r} offers no signing algorithm we verify")
        self.algorithm = preferred if preferred in usable else usable[0]

    def sign(self, message: bytes) -> bytes:
        try:
            answer = self.client.sign(
                KeyId=self.key_id,
                Message=message,
                MessageType="RAW",
                SigningAlgorithm=self.algorithm,
            )
        except (ClientError, BotoCoreError) as exc:
            raise SigningFailed(f"KMS key {self.key_id} did not sign: {exc}") from exc
        return bytes(answer["Signature"])


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
