"""What is signed and how a signature is stored.

A signature vouches for one stored object at one place: the statement names the kind of
object (manifest or verification report), the backup id and database it belongs to, its
key in the store and its size and SHA-256. A manifest copied under another backup's id (a
replay) carries a statement naming the other backup and the other key, so it fails even
though the signature itself is genuine.

The signature object (`<object>.sig`) is a small JSON document: the statement, the
algorithm (named as KMS names them, for local keys too), the key id and the signature in
base64. The signed message is the statement's canonical JSON (sorted keys, no spaces).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import IntegrityError

FORMAT = "backproof.signature"
FORMAT_VERSION = 1
STATEMENT_FORMAT = "backproof.signed-object"
KINDS = ("manifest", "verification")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(value: Any) -> bytes:
    """The one byte form of a JSON value that is signed and checked."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class Statement:
    """What a signature vouches for: this object, at this key, of this backup."""

    kind: str  # manifest | verification
    backup_id: str
    database: str
    key: str  # the object's key in the store (prefix included, bucket not)
    sha256: str
    size: int

    @classmethod
    def of(cls, kind: str, backup_id: str, database: str, key: str, data: bytes) -> Statement:
        return cls(kind, backup_id, database, key, sha256_hex(data), len(data))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATEMENT_FORMAT,
            "kind": self.kind,
            "backup_id": self.backup_id,
            "database": self.database,
            "key": self.key,
            "sha256": self.sha256,
            "size": self.size,
        }

    def message(self) -> bytes:
        return canonical(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "signature") -> Statement:
        if not isinstance(data, dict) or data.get("format") != STATEMENT_FORMAT:
            raise IntegrityError(f"{where} holds no {STATEMENT_FORMAT} statement")
        try:
            statement = cls(
                kind=str(data["kind"]),
                backup_id=str(data["backup_id"]),
                database=str(data["database"]),
                key=str(data["key"]),
                sha256=str(data["sha256"]),
                size=int(data["size"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{where}: the statement lacks or garbles {exc}") from exc
        if statement.kind not in KINDS or not _SHA256.match(statement.sha256):
            raise IntegrityError(f"{where}: the statement's kind or sha256 is malformed")
        return statement

    def differences(self, expected: Statement) -> list[str]:
        """What this (signed) statement says that `expected` (what was found) does not."""
        mine, theirs = self.to_dict(), expected.to_dict()
        return [
            f"{name}: signed {mine[name]!r}, found {theirs[name]!r}"
            for name in ("kind", "backup_id", "database", "key", "size", "sha256")
            if mine[name] != theirs[name]
        ]


@dataclass(frozen=True)
class Envelope:
    """One stored signature: the statement, who signed it with what, and the signature."""

    statement: Statement
    algorithm: str
    key_id: str
    signature: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "statement": self.statement.to_dict(),
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2).encode()

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "signature") -> Envelope:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise IntegrityError(f"{where} is not a {FORMAT} object")
        if data.get("format_version") != FORMAT_VERSION:
            raise IntegrityError(
                f"{where} has format version {data.get('format_version')!r}; this backproof "
                f"reads version {FORMAT_VERSION}"
            )
        try:
            signature = base64.b64decode(str(data["signature"]), validate=True)
            return cls(
                statement=Statement.from_dict(data["statement"], where=where),
                algorithm=str(data["algorithm"]),
                key_id=str(data["key_id"]),
                signature=signature,
            )
        except (KeyError, binascii.Error, ValueError) as exc:
            raise IntegrityError(f"{where} is malformed: {exc}") from exc

    @classmethod
    def from_json(cls, raw: bytes, *, where: str = "signature") -> Envelope:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"{where} is not valid JSON: {exc}") from exc
        return cls.from_dict(data, where=where)
