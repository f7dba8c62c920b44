"""The second region's copy of the store (S3 replication's destination), opened read-only with
a client in the bucket's own region."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import BadInput, StoreUnavailable
from .multipart import client_error_code
from .s3 import S3BackupStore

_RETRIES = Config(retries={"max_attempts": 8, "mode": "adaptive"})


def bucket_region(bucket: str, client: Any = None) -> str:
    """Where a bucket lives (GetBucketLocation says nothing, i.e. None, for us-east-1)."""
    client = client or boto3.client("s3", config=_RETRIES)
    try:
        location = client.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    except ClientError as exc:
        raise StoreUnavailable(
            f"cannot find the region of replica bucket {bucket!r}: "
            f"{client_error_code(exc) or exc}; give --replica-region"
        ) from exc
    except BotoCoreError as exc:
        raise StoreUnavailable(f"cannot reach the object store: {exc}") from exc
    return str(location or "us-east-1")


def open_replica(url: str, *, region: str | None = None) -> S3BackupStore:
    """The replica an s3://BUCKET[/PREFIX] URL names, read with a client in its region."""
    parsed = urlparse(url or "")
    if parsed.scheme != "s3" or not parsed.netloc:
        raise BadInput(f"replica {url!r} is not an s3://BUCKET[/PREFIX] URL")
    region = region or bucket_region(parsed.netloc)
    client = boto3.client("s3", region_name=region, config=_RETRIES)
    return S3BackupStore.from_url(url, client=client, object_lock="")
