"""The streaming multipart writer: parts at the right boundaries, the whole object intact."""

from __future__ import annotations

import hashlib
import os

import pytest

from backproof.errors import UploadFailed
from backproof.store import open_store
from backproof.store.multipart import MIN_PART_SIZE

from ..conftest import S3Store


def test_parts_reassemble_into_the_exact_stream(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("backproof.store.multipart.DEFAULT_PART_SIZE", MIN_PART_SIZE)
    store = open_store(s3_store.url, kms_key_id=s3_store.kms_key_id)
    data = os.urandom(MIN_PART_SIZE * 2 + 12345)
    upload = store.open_upload("team-a/x/obj")
    for start in range(0, len(data), 777_777):  # chunk sizes that never align with parts
        upload.write(data[start : start + 777_777])
    info = upload.complete()
    body = s3_store.s3.get_object(Bucket=s3_store.bucket, Key="team-a/x/obj")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert info.size == len(data) and info.encryption["type"] == "aws:kms"
    assert info.etag.strip('"').endswith("-3")  # a multipart ETag names its part count


def test_abort_leaves_nothing(s3_store: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("backproof.store.multipart.DEFAULT_PART_SIZE", MIN_PART_SIZE)
    store = open_store(s3_store.url)
    upload = store.open_upload("team-a/y/obj")
    upload.write(os.urandom(MIN_PART_SIZE + 1))
    upload.abort()
    assert s3_store.s3.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads") is None
    assert s3_store.s3.list_objects_v2(Bucket=s3_store.bucket).get("Contents") is None
    with pytest.raises(UploadFailed):
        upload.complete()
