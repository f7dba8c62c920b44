"""Make a real stored backup look as if it had been taken earlier: tests of ages (status,
freshness, retention by age) need backups of different ages without waiting for them."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from backproof.model.manifest import new_backup_id
from backproof.store import BackupStore


def backdate(store: BackupStore, s3: Any, backup_id: str, age: timedelta) -> str:
    """Move backup `backup_id` to an id (and manifest) `age` older; returns the new id.

    Every object is copied under the new directory (the manifest rewritten to name its new id
    and time) with the same server-side encryption, then the old directory is deleted."""
    stored = store.find(backup_id)
    when = stored.created_at - age
    new_id = new_backup_id(when)
    new_prefix = store.backup_prefix(stored.database, new_id)
    bucket = store.url.removeprefix("s3://").split("/", 1)[0]
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=stored.prefix).get("Contents", [])
    for obj in listing:
        source = s3.get_object(Bucket=bucket, Key=obj["Key"])
        body = source["Body"].read()
        name = obj["Key"][len(stored.prefix) :]
        if name == "manifest.json":
            manifest = json.loads(body)
            manifest.update(backup_id=new_id, created_at=when.isoformat())
            body = json.dumps(manifest).encode()
        encryption: dict[str, Any] = {"ServerSideEncryption": source["ServerSideEncryption"]}
        if source.get("SSEKMSKeyId"):
            encryption["SSEKMSKeyId"] = source["SSEKMSKeyId"]
        s3.put_object(Bucket=bucket, Key=new_prefix + name, Body=body, **encryption)
    store.delete_prefix(stored.prefix)
    return new_id
