"""The second region: `verify --replica` proves the replica holds an exact copy of a backup;
`status --replica` shows how far it lags. moto in-process, the replica in another region."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any, Final

import boto3
import pytest

from backproof.cli import main

from ..conftest import S3Store, SourceDatabase, take_backup

REGION: Final = "eu-central-1"


def replica_bucket() -> tuple[Any, str]:
    client = boto3.client("s3", region_name=REGION)
    bucket = f"replica-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    return client, bucket


def replicate(where: S3Store, client: Any, bucket: str, backup_id: str | None = None) -> None:
    """What S3 replication would do: copy every object (of one backup) to the replica."""
    listed = where.s3.list_objects_v2(Bucket=where.bucket, Prefix="team-a/")
    for obj in listed.get("Contents", []):
        if backup_id is None or backup_id in obj["Key"]:
            copy(where, client, bucket, obj["Key"])


def copy(where: S3Store, client: Any, bucket: str, key: str) -> None:
    """The bytes, not CopyObject (moto's copy of a multipart object fails its checksum)."""
    body = where.s3.get_object(Bucket=where.bucket, Key=key)["Body"].read()
    client.put_object(Bucket=bucket, Key=key, Body=body)


def backup(db: SourceDatabase, where: S3Store) -> str:
    store, result = take_backup(db, where, tier="daily", fingerprints=False)
    backup_id = result.manifest.backup_id
    report = {"verdict": "verified", "passed": True, "backup_id": backup_id,
              "finished_at": datetime.now(UTC).isoformat()}  # fmt: skip
    store.write_verification(store.find(backup_id), report)
    return backup_id


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_an_exact_copy_passes_and_a_damaged_one_is_named(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    backup_id = backup(source_db, s3_store)
    client, bucket = replica_bucket()
    replicate(s3_store, client, bucket)
    replica = f"s3://{bucket}/team-a"
    verify = ("verify", backup_id, "--store", s3_store.url, "--replica", replica)

    code, out = run(capsys, *verify)
    assert code == 0 and out["passed"]
    kinds = {r["subject"].rsplit("/", 1)[-1] for r in out["checks"]}
    assert {"manifest.json", "roles.json"} <= kinds
    assert any(k.startswith("archive.dump") for k in kinds)
    assert any(r["subject"].count("/verifications/") for r in out["checks"])
    assert {r["check"] for r in out["checks"]} == {
        "replica.present",
        "replica.size",
        "replica.sha256",
    }

    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    archive = next(k for k in keys if "/archive.dump" in k)
    roles = next(k for k in keys if k.endswith("/roles.json"))
    body = client.get_object(Bucket=bucket, Key=archive)["Body"].read()
    client.put_object(Bucket=bucket, Key=archive, Body=body[:-1])  # truncated
    client.delete_object(Bucket=bucket, Key=roles)
    code, out = run(capsys, *verify)
    failed = {(r["check"], r["subject"]) for r in out["checks"] if r["verdict"] == "fail"}
    assert code == 1 and not out["passed"]
    assert failed == {
        ("replica.size", archive.removeprefix("team-a/")),
        ("replica.present", roles.removeprefix("team-a/")),
    }

    # Same size, other bytes: only the hash tells.
    client.put_object(Bucket=bucket, Key=archive, Body=body[:-1] + bytes([body[-1] ^ 1]))
    copy(s3_store, client, bucket, roles)
    capsys.readouterr()
    assert main([*verify, "--replica-region", REGION]) == 1
    text = capsys.readouterr().out
    assert f"FAIL replica.sha256 {archive.removeprefix('team-a/')}" in text


def test_status_shows_the_lag_when_the_replica_misses_the_newest_backup(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    first = backup(source_db, s3_store)
    client, bucket = replica_bucket()
    replicate(s3_store, client, bucket, first)
    second = backup(source_db, s3_store)
    replica = f"s3://{bucket}/team-a"

    _, out = run(capsys, "status", "--store", s3_store.url, "--replica", replica)
    (lag,) = out["replication"]
    assert lag["database"] == "shop"
    assert (lag["source_newest"], lag["replica_newest"], lag["missing"]) == (second, first, 1)
    expected = (
        datetime.fromisoformat(lag["source_newest_at"])
        - datetime.fromisoformat(lag["replica_newest_at"])
    ).total_seconds()
    assert lag["lag_seconds"] == expected > 0

    replicate(s3_store, client, bucket, second)
    capsys.readouterr()
    main(["status", "--store", s3_store.url, "--replica", replica])
    text = capsys.readouterr().out
    assert "REPLICA" in text and f"replica newest {second}" in text and "lag 0s" in text
