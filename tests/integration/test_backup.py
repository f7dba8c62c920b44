"""`backproof backup` and `backproof list` against real PostgreSQL and moto S3/KMS."""

from __future__ import annotations

import gzip
import hashlib
import json
from typing import Any

import pytest
import zstandard

from backproof.cli import main
from backproof.model.manifest import Manifest
from backproof.store import open_store

from ..conftest import S3Store, SourceDatabase


def backup(
    db: SourceDatabase, store: S3Store, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any] | None, str]:
    code = main(
        [
            "backup",
            "--source-url",
            db.url,
            "--store",
            store.url,
            "--database-name",
            "shop",
            "--json",
            *extra,
        ]
    )
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    print(err)
    return code, (json.loads(lines[-1]) if code == 0 and lines else None), err


def list_json(
    store: S3Store, capsys: pytest.CaptureFixture[str], *extra: str
) -> list[dict[str, Any]]:
    assert main(["list", "--store", store.url, "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_backup_of_awkward_database_is_listed_with_its_manifest(
    awkward_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a database full of awkward data
    # When it is backed up
    code, result, _ = backup(
        awkward_db, s3_store, capsys, "--tier", "daily", "--kms-key-id", s3_store.kms_key_id
    )
    # Then the summary names what was stored and the listing shows it
    assert code == 0 and result is not None
    assert set(result) == {
        "backup_id",
        "archive_key",
        "manifest_key",
        "size",
        "parts",
        "sha256",
        "tables",
        "rows",
        "seconds",
    }
    head = s3_store.s3.head_object(Bucket=s3_store.bucket, Key=result["archive_key"])
    assert head["ContentLength"] == result["size"]
    manifest = Manifest.from_json(
        s3_store.s3.get_object(Bucket=s3_store.bucket, Key=result["manifest_key"])["Body"].read()
    )
    inv = manifest.inventory
    names = {(t.schema, t.name) for t in inv.tables}
    assert ("Sales", "Order Items") in names and ("données", "clé_ünïcode") in names
    assert ("public", "events_2024") in names and ("archive", "big_customers") in names
    assert inv.table("public", "no_pk").rows == 5  # type: ignore[union-attr]
    assert inv.table("public", "empty_table").rows == 0  # type: ignore[union-attr]
    assert inv.large_objects["count"] == 2 and inv.large_objects["fingerprint"]
    assert {"hstore", "citext", "plpgsql"} <= set(inv.extensions)
    assert inv.objects["views"] == 1 and inv.objects["materialized_views"] == 1
    assert inv.objects["triggers"] == 1 and inv.objects["schemas"] == 4
    seq = {s.name: s.last_value for s in inv.sequences}
    assert seq["ticket_seq"] == 1041 and seq["unused_seq"] is None
    assert manifest.server["major"] >= 13 and manifest.tools["pg_dump"]["version"]
    assert manifest.archive.encryption == {"type": "aws:kms", "kms_key_id": s3_store.kms_key_id}
    rows = list_json(s3_store, capsys)
    assert [(r["backup_id"], r["tier"], r["verification"]) for r in rows] == [
        (result["backup_id"], "daily", "unverified")
    ]
    assert rows[0]["rows"] == result["rows"] == inv.total_rows


def test_archive_is_a_pg_dump_custom_archive_matching_the_manifest_hash(
    awkward_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:

    code, result, _ = backup(awkward_db, s3_store, capsys)
    assert code == 0 and result is not None
    body = s3_store.s3.get_object(Bucket=s3_store.bucket, Key=result["archive_key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == result["sha256"]
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    assert raw[:5] == b"PGDMP"


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_other_compressions(
    compression: str,
    source_db: SourceDatabase,
    s3_store: S3Store,
    capsys: pytest.CaptureFixture[str],
) -> None:

    source_db.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g")
    code, result, _ = backup(source_db, s3_store, capsys, "--compression", compression)
    assert code == 0 and result is not None
    body = s3_store.s3.get_object(Bucket=s3_store.bucket, Key=result["archive_key"])["Body"].read()
    raw = gzip.decompress(body) if compression == "gzip" else body
    assert raw[:5] == b"PGDMP"


def test_encryption_defaults_to_sse_s3_without_a_key(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result, _ = backup(source_db, s3_store, capsys)
    assert code == 0 and result is not None
    for key in (result["archive_key"], result["manifest_key"]):
        head = s3_store.s3.head_object(Bucket=s3_store.bucket, Key=key)
        assert head["ServerSideEncryption"] == "AES256"


def test_encryption_follows_the_bucket_default_kms_key(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    s3_store.s3.put_bucket_encryption(
        Bucket=s3_store.bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": s3_store.kms_key_id,
                    }
                }
            ]
        },
    )
    code, result, _ = backup(source_db, s3_store, capsys)
    assert code == 0 and result is not None
    for key in (result["archive_key"], result["manifest_key"]):
        head = s3_store.s3.head_object(Bucket=s3_store.bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == s3_store.kms_key_id


def test_list_filters_by_database_and_sorts_oldest_first(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    first = backup(source_db, s3_store, capsys)[1]
    assert (
        main(
            [
                "backup",
                "--source-url",
                source_db.url,
                "--store",
                s3_store.url,
                "--database-name",
                "other",
                "--json",
            ]
        )
        == 0
    )
    capsys.readouterr()
    second = backup(source_db, s3_store, capsys)[1]
    assert first and second
    shop = list_json(s3_store, capsys, "--database-name", "shop")
    assert [r["backup_id"] for r in shop] == sorted([first["backup_id"], second["backup_id"]])
    assert len(list_json(s3_store, capsys)) == 3
    assert main(["list", "--store", s3_store.url]) == 0
    text = capsys.readouterr().out
    assert "BACKUP ID" in text and first["backup_id"] in text and "unverified" in text


def test_store_reads_back_what_backup_wrote(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    source_db.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 10) g")
    result = backup(source_db, s3_store, capsys)[1]
    assert result
    store = open_store(s3_store.url)
    stored = store.find(result["backup_id"])
    assert store.find("latest").backup_id == result["backup_id"]
    manifest = store.load_manifest(stored)
    assert manifest.inventory.table("public", "t").rows == 10  # type: ignore[union-attr]
    assert stored.archive_key == result["archive_key"]
