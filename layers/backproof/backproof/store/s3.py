"""The backup store on S3, or anything boto3 reaches (AWS_ENDPOINT_URL for moto or MinIO).

Every object is written with server-side encryption: SSE-KMS with the given key or the
bucket's default key, else SSE-S3. Never unencrypted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import BadInput, IntegrityError, JobFailed, StoreUnavailable, UploadFailed
from ..model.manifest import Manifest
from .catalog import Catalog
from .layout import ARCHIVE_NAMES, BACKUPS, backup_prefix, tagging
from .locking import ENV, LockPolicy, latest_retention, lock_args
from .multipart import MultipartUpload, ObjectInfo, client_error_code


@dataclass
class S3BackupStore(Catalog):
    bucket: str
    prefix: str = ""
    kms_key_id: str | None = None
    client: Any = None
    _encryption: dict[str, Any] | None = field(default=None, repr=False)
    # Object Lock per tier for what this store writes (store/locking.py).
    object_lock: LockPolicy | None = None
    # While a job runs `writes_only_under(prefix)`, the only keys it may write or delete.
    _write_scope: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        kms_key_id: str | None = None,
        client: Any = None,
        object_lock: str | None = None,
    ) -> S3BackupStore:
        parsed = urlparse(url or "")
        if parsed.scheme != "s3" or not parsed.netloc:
            raise BadInput(f"store {url!r} is not an s3://BUCKET[/PREFIX] URL")
        prefix = parsed.path.strip("/")
        if client is None:
            client = boto3.client(
                "s3", config=Config(retries={"max_attempts": 8, "mode": "adaptive"})
            )
        store = cls(parsed.netloc, f"{prefix}/" if prefix else "", kms_key_id, client)
        lock = object_lock if object_lock is not None else os.environ.get(ENV)
        store.object_lock = LockPolicy.parse(lock) if lock else None
        return store

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def location(self, key: str) -> str:
        """The full address of a key, for people."""
        return f"s3://{self.bucket}/{key}"

    # -- keys --------------------------------------------------------------------------------
    def backup_prefix(self, database: str, backup_id: str, namespace: str = BACKUPS) -> str:
        return backup_prefix(self.prefix, database, backup_id, namespace)

    def archive_key(
        self, database: str, backup_id: str, compression: str, namespace: str = BACKUPS
    ) -> str:
        return self.backup_prefix(database, backup_id, namespace) + ARCHIVE_NAMES[compression]

    # -- checks before writing ---------------------------------------------------------------
    def check_writable(self) -> None:
        """Fail early, before anything is dumped, when the bucket or key cannot be used."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = client_error_code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise StoreUnavailable(
                    f"bucket {self.bucket!r} does not exist (or is not visible to these "
                    "credentials); create it or fix --store"
                ) from exc
            raise StoreUnavailable(
                f"cannot use bucket {self.bucket!r}: {code or exc}; check the credentials' "
                "s3:ListBucket/PutObject permissions"
            ) from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"cannot reach the object store: {exc}") from exc
        self.encryption_args()

    def encryption_args(self) -> dict[str, Any]:
        """Server-side encryption parameters for every write: never unencrypted."""
        if self._encryption is not None:
            return self._encryption
        if self.kms_key_id:
            self._check_kms_key(self.kms_key_id)
            args: dict[str, Any] = {
                "ServerSideEncryption": "aws:kms",
                "SSEKMSKeyId": self.kms_key_id,
                "BucketKeyEnabled": True,
            }
        else:
            args = {"ServerSideEncryption": "AES256"}
            try:
                rules = self.client.get_bucket_encryption(Bucket=self.bucket)[
                    "ServerSideEncryptionConfiguration"
                ]["Rules"]
                default = rules[0]["ApplyServerSideEncryptionByDefault"]
                if default.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse"):
                    args = {"ServerSideEncryption": "aws:kms"}
                    if default.get("KMSMasterKeyID"):
                        args["SSEKMSKeyId"] = default["KMSMasterKeyID"]
            except (ClientError, KeyError, IndexError):
                pass  # no default configured or not allowed to read it: SSE-S3
        self._encryption = args
        return args

    def _check_kms_key(self, key_id: str) -> None:
        kms = boto3.client("kms", region_name=self.client.meta.region_name)
        try:
            meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        except ClientError as exc:
            code = client_error_code(exc)
            if code == "AccessDeniedException":
                return  # may still be usable for S3 through a grant; the first write will tell
            raise StoreUnavailable(
                f"KMS key {key_id!r} cannot be used: {code}; check --kms-key-id and the key policy"
            ) from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"cannot reach KMS to check key {key_id!r}: {exc}") from exc
        if not meta.get("Enabled", True) or meta.get("KeyState") not in (None, "Enabled"):
            raise StoreUnavailable(
                f"KMS key {key_id!r} is {meta.get('KeyState', 'disabled')}; enable it or pass "
                "another --kms-key-id"
            )

    # -- writing -----------------------------------------------------------------------------
    @contextmanager
    def writes_only_under(self, prefix: str) -> Iterator[None]:
        """While inside, writing or deleting anything outside `prefix` (the backup directory a
        backup is writing, a backup's evidence) raises: the engine's own guard, whatever the
        role may do. A scope inside another must lie within it."""
        outer = self._write_scope
        if outer is not None and not prefix.startswith(outer):
            raise JobFailed(f"refusing to write under {prefix}: this job writes only under {outer}")
        self._write_scope = prefix
        try:
            yield
        finally:
            self._write_scope = outer

    def _may_write(self, key: str) -> None:
        if self._write_scope is not None and not key.startswith(self._write_scope):
            raise JobFailed(
                f"refusing to write {self.location(key)}: this job writes only under "
                f"{self.location(self._write_scope)}"
            )

    def open_upload(
        self, key: str, content_type: str = "application/octet-stream", *, tier: str | None = None
    ) -> MultipartUpload:
        self._may_write(key)
        return MultipartUpload(
            self.client,
            self.bucket,
            key,
            content_type=content_type,
            object_args={
                **tagging(tier),
                **self.encryption_args(),
                **lock_args(self.object_lock, tier),
            },
            head=self.head,
        )

    def put_bytes(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/json",
        *,
        tier: str | None = None,
    ) -> None:
        self._may_write(key)
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                ChecksumAlgorithm="SHA256",
                **tagging(tier),
                **self.encryption_args(),
                **lock_args(self.object_lock, tier),
            )
        except (ClientError, BotoCoreError) as exc:
            raise UploadFailed(f"could not write s3://{self.bucket}/{key}: {exc}") from exc

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`; returns how many. DeleteObjects answers 200 even
        when some keys were not deleted (Object Lock, permissions): those raise UploadFailed
        naming the first refused key and the count, so nothing is reported deleted that is not."""
        self._may_write(prefix)
        keys = [o["Key"] for o in self._iter_objects(prefix)]
        refused: list[dict[str, Any]] = []
        for i in range(0, len(keys), 1000):
            try:
                answer = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True},
                )
            except (ClientError, BotoCoreError) as exc:
                raise UploadFailed(
                    f"could not delete under s3://{self.bucket}/{prefix}: {exc}"
                ) from exc
            refused += answer.get("Errors", [])
        if refused:
            first = refused[0]
            reason = f"{first.get('Code')} {first.get('Message', '')}".strip()
            raise UploadFailed(
                f"{len(refused)} of {len(keys)} objects under s3://{self.bucket}/{prefix} were not "
                f"deleted; first: {first.get('Key')}: {reason}"
            )
        return len(keys)

    def locked_until(self, prefix: str, now: datetime | None = None) -> datetime | None:
        """The latest Object Lock retain-until date in the future of any object under
        `prefix` (None: nothing there is under retention, so it may be deleted)."""
        now = now or datetime.now(UTC)
        try:
            heads = [
                self.client.head_object(Bucket=self.bucket, Key=o["Key"])
                for o in self._iter_objects(prefix)
            ]
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"cannot read s3://{self.bucket}/{prefix}: {exc}") from exc
        return latest_retention(heads, now)

    # -- reading -----------------------------------------------------------------------------
    def head(self, key: str) -> ObjectInfo:
        try:
            meta = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if client_error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise IntegrityError(f"s3://{self.bucket}/{key} is missing") from exc
            raise StoreUnavailable(f"cannot read s3://{self.bucket}/{key}: {exc}") from exc
        enc = {"type": meta.get("ServerSideEncryption", "none")}
        if meta.get("SSEKMSKeyId"):
            enc["kms_key_id"] = meta["SSEKMSKeyId"]
        if meta.get("ReplicationStatus") == "REPLICA":
            # S3 replication re-encrypts with the destination's own key (issue: second region)
            enc["replica"] = "true"
        return ObjectInfo(
            key, int(meta["ContentLength"]), enc, meta.get("ETag", ""), meta.get("LastModified")
        )

    def get_bytes(self, key: str) -> bytes:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as exc:
            if client_error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise IntegrityError(f"s3://{self.bucket}/{key} is missing") from exc
            raise StoreUnavailable(f"cannot read s3://{self.bucket}/{key}: {exc}") from exc

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if client_error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise IntegrityError(f"s3://{self.bucket}/{key} is missing") from exc
            raise StoreUnavailable(f"cannot read s3://{self.bucket}/{key}: {exc}") from exc
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def _iter_objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                yield from page.get("Contents", [])
        except ClientError as exc:
            code = client_error_code(exc)
            if code in ("NoSuchBucket", "404"):
                raise StoreUnavailable(
                    f"bucket {self.bucket!r} does not exist; check --store"
                ) from exc
            raise StoreUnavailable(
                f"cannot list s3://{self.bucket}/{prefix}: {code or exc}"
            ) from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"cannot reach the object store: {exc}") from exc

    def _in_progress_uploads(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                yield from page.get("Uploads", [])
        except ClientError:
            return

    def adopt_encryption_of(self, manifest: Manifest) -> None:
        """Write what belongs to a backup (its report) with the key that encrypts the backup,
        unless this store was given a key of its own."""
        key = manifest.archive.encryption.get("kms_key_id")
        if key and not self.kms_key_id:
            self.kms_key_id = key
            self._encryption = None
