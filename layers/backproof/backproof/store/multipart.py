"""Multipart upload of one object while its producer keeps writing, in bounded memory."""

from __future__ import annotations

import base64
import hashlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import StoreUnavailable, UploadFailed

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


@dataclass
class ObjectInfo:
    key: str
    size: int
    encryption: dict[str, str]
    etag: str = ""
    last_modified: datetime | None = None


def client_error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


class MultipartUpload:
    """Streams bytes to one object in parts, uploading while the producer keeps writing.

    Memory is bounded: the part being filled (a preallocated buffer, so bytes are copied
    once) plus at most IN_FLIGHT_BUDGET bytes of parts uploading. Nothing is visible under
    the key until `complete()`; `abort()` removes every part.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        content_type: str,
        object_args: dict[str, Any],
        head: Callable[[str], ObjectInfo],
    ) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self._head = head
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
            self.upload_id: str | None = client.create_multipart_upload(
                Bucket=bucket,
                Key=key,
                ContentType=content_type,
                ChecksumAlgorithm="SHA256",
                **object_args,
            )["UploadId"]
        except ClientError as exc:
            code = client_error_code(exc)
            hint = (
                "check the KMS key policy and --kms-key-id"
                if "KMS" in code or "kms" in str(exc)
                else "check the bucket and the credentials' permissions"
            )
            self._pool.shutdown()
            raise StoreUnavailable(
                f"cannot start an upload to s3://{bucket}/{key}: {code or exc}; {hint}"
            ) from exc

    def write(self, data: bytes) -> None:
        if not self._errors.empty():
            raise UploadFailed(
                f"upload of s3://{self.bucket}/{self.key} failed: {self._errors.get()}"
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
            response = self.client.upload_part(
                Bucket=self.bucket,
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
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            )
        except (ClientError, BotoCoreError) as exc:
            self.abort()
            raise UploadFailed(f"upload of s3://{self.bucket}/{self.key} failed: {exc}") from exc
        finally:
            self._pool.shutdown()
        self._done = True
        info = self._head(self.key)
        if info.size != self.size:
            raise UploadFailed(
                f"s3://{self.bucket}/{self.key} holds {info.size} bytes, {self.size} were sent"
            )
        return info

    def abort(self) -> None:
        """Remove every uploaded part. Safe to call more than once."""
        if self._done or self.upload_id is None:
            return
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
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
