"""The backup store: S3 or anything boto3 reaches (AWS_ENDPOINT_URL for moto or MinIO).

Layout under the store's prefix:
    backups/<database>/<yyyy>/<mm>/<dd>/<backup-id>/{archive.dump[.zst|.gz], manifest.json,
                                                     verification.json}
A directory without manifest.json is not a backup (an upload that died, or one in progress).
Every object is written with server-side encryption: SSE-KMS with the given key or the
bucket's default key, else SSE-S3. Never unencrypted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import queue
import re
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .errors import BackupNotFound, BadInput, IntegrityError, StoreUnavailable, UploadFailed
from .manifest import Manifest, backup_id_time, is_backup_id

# S3 multipart limits: https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html
MIN_PART_SIZE = 5 << 20
MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 8 << 20
# Part size doubles every this many parts, up to MAX_PART_SIZE: 10,000 parts then hold
# 8 + 16 + 8,000 x 32 MiB, about 280 GiB of compressed archive.
PARTS_PER_SIZE_STEP = 1_000
MAX_PART_SIZE = 32 << 20
# Bytes of parts being uploaded at once (at least one part). With the part being filled this
# bounds the upload's memory: about 2 x 32 MiB at the largest part size, whatever the dump.
IN_FLIGHT_BUDGET = 32 << 20
UPLOAD_CONCURRENCY = IN_FLIGHT_BUDGET // DEFAULT_PART_SIZE

MANIFEST_NAME = "manifest.json"
VERIFICATION_NAME = "verification.json"
ARCHIVE_NAMES = {"zstd": "archive.dump.zst", "gzip": "archive.dump.gz", "none": "archive.dump"}
_DATABASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


TIER_TAG = "backproof:tier"


def tagging(tier: str | None) -> dict[str, str]:
    """Object tag naming the backup's tier; the bucket's lifecycle rules move tiers by it."""
    return {"Tagging": urlencode({TIER_TAG: tier})} if tier else {}


def validate_database_name(name: str) -> str:
    if not _DATABASE_NAME.match(name or ""):
        raise BadInput(
            f"database name {name!r} cannot be used in object keys: use letters, digits, '.', "
            "'_' or '-' (at most 128, starting with a letter or digit)"
        )
    return name


def _client_error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


@dataclass
class ObjectInfo:
    key: str
    size: int
    encryption: dict[str, str]
    etag: str = ""
    last_modified: datetime | None = None


@dataclass
class StoredBackup:
    """One backup directory in the store. `complete` means its manifest exists."""

    backup_id: str
    database: str
    prefix: str  # ends with '/'
    complete: bool
    archive_key: str | None = None
    archive_size: int = 0
    has_verification: bool = False
    last_modified: datetime | None = None
    in_progress_uploads: int = 0
    manifest: Manifest | None = None
    verification: dict[str, Any] | None = None

    @property
    def manifest_key(self) -> str:
        return self.prefix + MANIFEST_NAME

    @property
    def verification_key(self) -> str:
        return self.prefix + VERIFICATION_NAME

    @property
    def created_at(self) -> datetime:
        return backup_id_time(self.backup_id)


@dataclass
class BackupStore:
    bucket: str
    prefix: str = ""
    kms_key_id: str | None = None
    client: Any = None
    _encryption: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def from_url(
        cls, url: str, *, kms_key_id: str | None = None, client: Any = None
    ) -> BackupStore:
        parsed = urlparse(url or "")
        if parsed.scheme != "s3" or not parsed.netloc:
            raise BadInput(f"store {url!r} is not an s3://BUCKET[/PREFIX] URL")
        prefix = parsed.path.strip("/")
        if client is None:
            client = boto3.client(
                "s3", config=Config(retries={"max_attempts": 8, "mode": "adaptive"})
            )
        return cls(parsed.netloc, f"{prefix}/" if prefix else "", kms_key_id, client)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    # -- keys --------------------------------------------------------------------------------
    def backup_prefix(self, database: str, backup_id: str) -> str:
        when = backup_id_time(backup_id)
        return f"{self.prefix}backups/{database}/{when:%Y/%m/%d}/{backup_id}/"

    def archive_key(self, database: str, backup_id: str, compression: str) -> str:
        return self.backup_prefix(database, backup_id) + ARCHIVE_NAMES[compression]

    # -- checks before writing ---------------------------------------------------------------
    def check_writable(self) -> None:
        """Fail early, before anything is dumped, when the bucket or key cannot be used."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = _client_error_code(exc)
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
            code = _client_error_code(exc)
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
    def open_upload(
        self, key: str, content_type: str = "application/octet-stream", *, tier: str | None = None
    ) -> MultipartUpload:
        return MultipartUpload(self, key, content_type, tier=tier)

    def put_bytes(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/json",
        *,
        tier: str | None = None,
    ) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                ChecksumAlgorithm="SHA256",
                **tagging(tier),
                **self.encryption_args(),
            )
        except (ClientError, BotoCoreError) as exc:
            raise UploadFailed(f"could not write s3://{self.bucket}/{key}: {exc}") from exc

    def delete_prefix(self, prefix: str) -> int:
        keys = [o["Key"] for o in self._iter_objects(prefix)]
        for i in range(0, len(keys), 1000):
            self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True},
            )
        return len(keys)

    # -- reading -----------------------------------------------------------------------------
    def head(self, key: str) -> ObjectInfo:
        try:
            meta = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _client_error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise IntegrityError(f"s3://{self.bucket}/{key} is missing") from exc
            raise StoreUnavailable(f"cannot read s3://{self.bucket}/{key}: {exc}") from exc
        enc = {"type": meta.get("ServerSideEncryption", "none")}
        if meta.get("SSEKMSKeyId"):
            enc["kms_key_id"] = meta["SSEKMSKeyId"]
        return ObjectInfo(
            key, int(meta["ContentLength"]), enc, meta.get("ETag", ""), meta.get("LastModified")
        )

    def get_bytes(self, key: str) -> bytes:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as exc:
            if _client_error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise IntegrityError(f"s3://{self.bucket}/{key} is missing") from exc
            raise StoreUnavailable(f"cannot read s3://{self.bucket}/{key}: {exc}") from exc

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if _client_error_code(exc) in ("404", "NoSuchKey", "NotFound"):
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
            code = _client_error_code(exc)
            if code in ("NoSuchBucket", "404"):
                raise StoreUnavailable(
                    f"bucket {self.bucket!r} does not exist; check --store"
                ) from exc
            raise StoreUnavailable(
                f"cannot list s3://{self.bucket}/{prefix}: {code or exc}"
            ) from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"cannot reach the object store: {exc}") from exc

    def list_backups(
        self,
        database: str | None = None,
        *,
        include_incomplete: bool = False,
        load: bool = True,
    ) -> list[StoredBackup]:
        """Backups, oldest first. Directories without a manifest only with include_incomplete.

        With `load`, each complete backup's manifest and verification report are read too.
        """
        root = f"{self.prefix}backups/" + (
            f"{validate_database_name(database)}/" if database else ""
        )
        found: dict[str, StoredBackup] = {}
        for obj in self._iter_objects(root):
            self._file_object(found, obj)
        if include_incomplete:
            for upload in self._in_progress_uploads(root):
                entry = self._entry_for(found, upload["Key"])
                if entry:
                    entry.in_progress_uploads += 1
        backups = sorted(found.values(), key=lambda b: (b.backup_id, b.database))
        if not include_incomplete:
            backups = [b for b in backups if b.complete]
        if load:
            for b in backups:
                self._load(b)
        return backups

    def _entry_for(self, found: dict[str, StoredBackup], key: str) -> StoredBackup | None:
        """The backup directory a key belongs to, or None for keys outside the layout."""
        rest = key[len(self.prefix) + len("backups/") :].split("/")
        if len(rest) != 6 or not is_backup_id(rest[4]):
            return None
        prefix = key[: -len(rest[5])] if rest[5] else key
        return found.setdefault(prefix, StoredBackup(rest[4], rest[0], prefix, complete=False))

    def _file_object(self, found: dict[str, StoredBackup], obj: dict[str, Any]) -> None:
        entry = self._entry_for(found, obj["Key"])
        if entry is None:
            return
        name = obj["Key"].rsplit("/", 1)[-1]
        if name == MANIFEST_NAME:
            entry.complete = True
        elif name == VERIFICATION_NAME:
            entry.has_verification = True
        elif name in ARCHIVE_NAMES.values():
            entry.archive_key = obj["Key"]
            entry.archive_size = int(obj["Size"])
        entry.last_modified = max(filter(None, [entry.last_modified, obj["LastModified"]]))

    def _load(self, b: StoredBackup) -> None:
        if b.complete:
            try:
                b.manifest = self.load_manifest(b)
            except IntegrityError:
                b.manifest = None
        if b.has_verification:
            b.verification = self.load_verification(b)

    def _in_progress_uploads(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                yield from page.get("Uploads", [])
        except ClientError:
            return

    def find(self, backup_id: str, database: str | None = None) -> StoredBackup:
        """The backup with this id, or the newest complete one for `latest`."""
        if backup_id != "latest" and not is_backup_id(backup_id):
            raise BadInput(
                f"{backup_id!r} is not a backup id (they look like 20261121T050312.123Z-1a2b3c); "
                "run `backproof list` to see them"
            )
        backups = self.list_backups(database, load=False)
        if backup_id == "latest":
            if not backups:
                where = f" for database {database!r}" if database else ""
                raise BackupNotFound(f"no complete backup{where} in {self.url}")
            return backups[-1]
        matches = [b for b in backups if b.backup_id == backup_id]
        if not matches:
            raise BackupNotFound(
                f"no backup {backup_id} in {self.url}; run `backproof list --store {self.url}`"
            )
        if len(matches) > 1:
            raise BadInput(
                f"backup id {backup_id} exists for several databases; pass --database-name"
            )
        return matches[0]

    def load_manifest(self, stored: StoredBackup) -> Manifest:
        manifest = Manifest.from_json(
            self.get_bytes(stored.manifest_key), where=stored.manifest_key
        )
        if manifest.backup_id != stored.backup_id or manifest.database != stored.database:
            raise IntegrityError(
                f"{stored.manifest_key} describes backup {manifest.backup_id} of "
                f"{manifest.database}, not the directory it is in"
            )
        return manifest

    def load_verification(self, stored: StoredBackup) -> dict[str, Any] | None:
        try:
            data = json.loads(self.get_bytes(stored.verification_key))
        except (IntegrityError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_verification(self, stored: StoredBackup, report: dict[str, Any]) -> str:
        tier = stored.manifest.tier if stored.manifest else report.get("tier")
        self.put_bytes(
            stored.verification_key,
            json.dumps(report, indent=2, default=str).encode(),
            tier=tier if isinstance(tier, str) else None,
        )
        return stored.verification_key


class MultipartUpload:
    """Streams bytes to one object in parts, uploading while the producer keeps writing.

    Memory is bounded: the part being filled (a preallocated buffer, so bytes are copied
    once) plus at most IN_FLIGHT_BUDGET bytes of parts uploading. Nothing is visible under
    the key until `complete()`; `abort()` removes every part.
    """

    def __init__(
        self, store: BackupStore, key: str, content_type: str, *, tier: str | None = None
    ) -> None:
        self.store = store
        self.key = key
        self.size = 0
        self._parts: list[Future[dict[str, Any]]] = []
        self._part_size = DEFAULT_PART_SIZE
        self._buffer = bytearray(self._part_size)
        self._filled = 0
        self._in_flight = 0
        self._room = threading.Condition()
        self._pool = ThreadPoolExecutor(UPLOAD_CONCURRENCY, thread_name_prefix="s3-part")
        self._errors: queue.Queue[BaseException] = queue.Queue()
        self._done = False
        try:
            self.upload_id: str | None = store.client.create_multipart_upload(
                Bucket=store.bucket,
                Key=key,
                ContentType=content_type,
                ChecksumAlgorithm="SHA256",
                **tagging(tier),
                **store.encryption_args(),
            )["UploadId"]
        except ClientError as exc:
            code = _client_error_code(exc)
            hint = (
                "check the KMS key policy and --kms-key-id"
                if "KMS" in code or "kms" in str(exc)
                else "check the bucket and the credentials' permissions"
            )
            self._pool.shutdown()
            raise StoreUnavailable(
                f"cannot start an upload to s3://{store.bucket}/{key}: {code or exc}; {hint}"
            ) from exc

    def write(self, data: bytes) -> None:
        if not self._errors.empty():
            raise UploadFailed(
                f"upload of s3://{self.store.bucket}/{self.key} failed: {self._errors.get()}"
            )
        self.size += len(data)
        view = memoryview(data)
        while view:
            take = min(len(view), self._part_size - self._filled)
            self._buffer[self._filled : self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == self._part_size:
                self._submit(self._buffer)
                self._buffer = bytearray(self._part_size)
                self._filled = 0

    def _submit(self, chunk: bytes | bytearray) -> None:
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise UploadFailed(
                f"archive exceeds S3's {MAX_PARTS} parts of at most {MAX_PART_SIZE >> 20} MiB; "
                "split the database into several backups (pg_dump options) or raise "
                "MAX_PART_SIZE"
            )
        if number % PARTS_PER_SIZE_STEP == 0:
            self._part_size = min(self._part_size * 2, MAX_PART_SIZE)
        size = len(chunk)
        with self._room:
            while self._in_flight and self._in_flight + size > IN_FLIGHT_BUDGET:
                self._room.wait()
            self._in_flight += size
        self._parts.append(self._pool.submit(self._upload_part, number, chunk))

    def _upload_part(self, number: int, chunk: bytes | bytearray) -> dict[str, Any]:
        try:
            checksum = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
            response = self.store.client.upload_part(
                Bucket=self.store.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=chunk,
                ChecksumSHA256=checksum,
            )
            return {"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum}
        except BaseException as exc:
            self._errors.put(exc)
            raise
        finally:
            with self._room:
                self._in_flight -= len(chunk)
                self._room.notify_all()

    def complete(self) -> ObjectInfo:
        if self._filled or not self._parts:
            self._submit(bytes(self._buffer[: self._filled]))
            self._buffer, self._filled = bytearray(), 0
        try:
            parts = [f.result() for f in self._parts]
            self.store.client.complete_multipart_upload(
                Bucket=self.store.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            )
        except (ClientError, BotoCoreError) as exc:
            self.abort()
            raise UploadFailed(
                f"upload of s3://{self.store.bucket}/{self.key} failed: {exc}"
            ) from exc
        finally:
            self._pool.shutdown()
        self._done = True
        info = self.store.head(self.key)
        if info.size != self.size:
            raise UploadFailed(
                f"s3://{self.store.bucket}/{self.key} holds {info.size} bytes, "
                f"{self.size} were sent"
            )
        return info

    def abort(self) -> None:
        """Remove every uploaded part. Safe to call more than once."""
        if self._done or self.upload_id is None:
            return
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            self.store.client.abort_multipart_upload(
                Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id
            )
        except (ClientError, BotoCoreError):
            pass  # the bucket's lifecycle rule for incomplete uploads is the backstop
        self.upload_id = None
        self._buffer, self._filled = bytearray(), 0

    def __enter__(self) -> MultipartUpload:
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        if et is not None:
            self.abort()


def now_utc() -> datetime:
    return datetime.now(UTC)
