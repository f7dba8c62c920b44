"""The backup store: what jobs need from it (`BackupStore`), the S3 implementation, the key
layout and multipart uploads. `open_store` turns a URL into a store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from ..errors import BadInput
from ..model.manifest import Manifest
from .layout import (
    BACKUPS,
    ROLES_NAME,
    SAFETY,
    SIGNATURE_SUFFIX,
    StoredBackup,
    safety_name,
    validate_database_name,
)
from .multipart import MultipartUpload, ObjectInfo
from .replica import open_replica
from .s3 import S3BackupStore

__all__ = [
    "BACKUPS",
    "ROLES_NAME",
    "SAFETY",
    "SIGNATURE_SUFFIX",
    "BackupStore",
    "MultipartUpload",
    "ObjectInfo",
    "S3BackupStore",
    "StoredBackup",
    "open_replica",
    "open_store",
    "safety_name",
    "validate_database_name",
]


class BackupStore(Protocol):
    """What the jobs need from a store of backups."""

    prefix: str  # where the layout starts in the bucket ("" or "team-a/"); see records.py

    @property
    def url(self) -> str: ...
    def location(self, key: str) -> str: ...

    # keys
    def backup_prefix(self, database: str, backup_id: str, namespace: str = ...) -> str: ...
    def archive_key(
        self, database: str, backup_id: str, compression: str, namespace: str = ...
    ) -> str: ...

    # writing
    def check_writable(self) -> None: ...
    def writes_only_under(self, prefix: str) -> AbstractContextManager[None]: ...
    def open_upload(
        self, key: str, content_type: str = ..., *, tier: str | None = None
    ) -> MultipartUpload: ...
    def put_bytes(
        self, key: str, data: bytes, content_type: str = ..., *, tier: str | None = None
    ) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def locked_until(self, prefix: str, now: datetime | None = None) -> datetime | None: ...
    def adopt_encryption_of(self, manifest: Manifest) -> None: ...

    # reading
    def head(self, key: str) -> ObjectInfo: ...
    def get_bytes(self, key: str) -> bytes: ...
    def iter_chunks(self, key: str, chunk_size: int = ...) -> Iterator[bytes]: ...
    def list_backups(
        self,
        database: str | None = None,
        *,
        include_incomplete: bool = False,
        load: bool = True,
        namespace: str = ...,
    ) -> list[StoredBackup]: ...
    def find(
        self, backup_id: str, database: str | None = None, *, namespace: str = ...
    ) -> StoredBackup: ...
    def load_manifest(self, stored: StoredBackup) -> Manifest: ...
    def load_verification(self, stored: StoredBackup) -> dict[str, Any] | None: ...
    def load_verifications(self, stored: StoredBackup) -> list[dict[str, Any]]: ...
    def write_verification(
        self,
        stored: StoredBackup,
        report: dict[str, Any],
        *,
        sign: Callable[[str, bytes], bytes | None] | None = None,
    ) -> str: ...


def open_store(
    url: str, *, kms_key_id: str | None = None, client: Any = None, object_lock: str | None = None
) -> BackupStore:
    """The store a URL names: s3://BUCKET[/PREFIX] (any S3 endpoint boto3 reaches)."""
    if not (url or "").startswith("s3://"):
        raise BadInput(f"store {url!r} is not an s3://BUCKET[/PREFIX] URL")
    return S3BackupStore.from_url(
        url, kms_key_id=kms_key_id, client=client, object_lock=object_lock
    )
