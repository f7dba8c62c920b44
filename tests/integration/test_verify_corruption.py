"""Real backups made bad on purpose: each must fail verification (exit 1) naming the right
check, and leave no instance, process or data directory behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backproof.cli import main
from backproof.jobs import verify as verify_module

from ..conftest import S3Store, SourceDatabase, take_backup
from .conftest import (
    assert_torn_down,
    failed_checks,
    failed_subjects,
)

SHOP = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,
                     created_at timestamptz NOT NULL DEFAULT now(), total numeric(12,2));
CREATE TABLE audit_log (at timestamptz DEFAULT now(), what text);
INSERT INTO customers (name) SELECT 'customer ' || i FROM generate_series(1, 200) i;
INSERT INTO orders (customer_id, total) SELECT 1 + i % 200, i * 1.25 FROM generate_series(1, 3000) i;
INSERT INTO audit_log (what) SELECT 'event ' || i FROM generate_series(1, 50) i;
"""


@pytest.fixture
def shop(source_db: SourceDatabase) -> SourceDatabase:
    source_db.execute(SHOP)
    return source_db


def verify(
    s3: S3Store, backup_id: str, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any]]:
    code = main(["verify", backup_id, "--store", s3.url, "--json", *extra])
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    report = json.loads(
        s3.s3.get_object(Bucket=s3.bucket, Key=summary["report_key"])["Body"].read()
    )
    return code, report


def rewrite(s3: S3Store, key: str, change: Callable[[bytes], bytes]) -> None:
    body = s3.s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
    s3.s3.put_object(
        Bucket=s3.bucket,
        Key=key,
        Body=change(body),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=s3.kms_key_id,
    )


def edit_manifest(s3: S3Store, key: str, change: Callable[[dict[str, Any]], None]) -> None:
    def apply(raw: bytes) -> bytes:
        data = json.loads(raw)
        change(data)
        return json.dumps(data).encode()

    rewrite(s3, key, apply)


def table(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in manifest["inventory"]["tables"] if t["name"] == name)


def test_flipped_byte_fails_sha256(
    shop: SourceDatabase, s3_store: S3Store, isolated_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a stored archive with one byte flipped in the middle
    _, result = take_backup(shop, s3_store)
    archive = result.manifest.archive.key
    rewrite(
        s3_store,
        archive,
        lambda b: b[: len(b) // 2] + bytes([b[len(b) // 2] ^ 0x01]) + b[len(b) // 2 + 1 :],
    )
    # When it is verified
    code, report = verify(s3_store, result.manifest.backup_id, capsys)
    # Then integrity fails on the checksum, before any instance existed
    assert code == 1 and report["verdict"] == "failed"
    assert "integrity.sha256" in failed_checks(report)
    assert report["instance"] == {} and "restore_seconds" not in report["timings"]
    assert_torn_down(isolated_tmp)


def test_truncated_archive_fails_size(
    shop: SourceDatabase, s3_store: S3Store, isolated_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, result = take_backup(shop, s3_store)
    rewrite(s3_store, result.manifest.archive.key, lambda b: b[: len(b) - 100])
    code, report = verify(s3_store, result.manifest.backup_id, capsys)
    assert code == 1
    assert {"integrity.size", "integrity.sha256"} <= failed_checks(report)
    assert report["instance"] == {}
    assert_torn_down(isolated_tmp)


def test_archive_swapped_for_another_backup_of_same_database_fails_sha256(
    shop: SourceDatabase, s3_store: S3Store, isolated_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two backups of the same database, the second after one row changed
    _, first = take_backup(shop, s3_store)
    shop.execute("UPDATE orders SET total = total + 1 WHERE id = 7")
    _, second = take_backup(shop, s3_store)
    # When the first backup's archive is replaced by the second's
    other = s3_store.s3.get_object(Bucket=s3_store.bucket, Key=second.manifest.archive.key)[
        "Body"
    ].read()
    rewrite(s3_store, first.manifest.archive.key, lambda _old: other)
    # Then verifying the first fails its checksum
    code, report = verify(s3_store, first.manifest.backup_id, capsys)
    assert code == 1 and "integrity.sha256" in failed_checks(report)
    assert_torn_down(isolated_tmp)


def test_manifest_row_count_changed_fails_row_count(
    shop: SourceDatabase, s3_store: S3Store, isolated_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, result = take_backup(shop, s3_store)
    edit_manifest(
        s3_store, result.manifest_key, lambda m: table(m, "orders").__setitem__("rows", 3001)
    )
    code, report = verify(s3_store, result.manifest.backup_id, capsys)
    assert code == 1
    assert failed_checks(report) == {"row_count"}
    assert failed_subjects(report, "row_count") == {"public.orders"}
    assert report["instance"]["kind"] == "local"
    assert_torn_down(isolated_tmp)


def test_table_missing_from_archive_fails_table_present(
    shop: SourceDatabase, s3_store: S3Store, isolated_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an archive dumped without one table (the manifest still describes the whole database)
    _, result = take_backup(shop, s3_store, "--exclude-table=public.audit_log")
    code, report = verify(s3_store, result.manifest.backup_id, capsys)
    # Then the table is reported missing
    assert code == 1
    assert failed_subjects(report, "table_present") == {"public.audit_log"}
    assert_torn_down(isolated_tmp)


def test_table_data_missing_from_archive_fails_row_count(
    shop: SourceDatabase, s3_store: S3Store, isolated_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, result = take_backup(shop, s3_store, "--exclude-table-data=public.orders")
    code, report = verify(s3_store, result.manifest.backup_id, capsys)
    assert code == 1
    assert failed_subjects(report, "row_count") == {"public.orders"}
    assert failed_subjects(report, "fingerprint") == {"public.orders"}
    assert_torn_down(isolated_tmp)


def test_rows_removed_with_old_manifest_reused_fails_row_count(
    shop: SourceDatabase, s3_store: S3Store, isolated_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a first backup, then rows deleted from the source and a second backup
    _, old = take_backup(shop, s3_store)
    shop.execute("DELETE FROM orders WHERE id % 10 = 0")
    _, new = take_backup(shop, s3_store)
    # When the second backup's manifest is replaced by the first one's (archive facts kept, so
    # integrity alone cannot tell)
    stale = old.manifest.to_dict()

    def reuse(m: dict[str, Any]) -> None:
        for key in ("inventory", "snapshot", "created_at"):
            m[key] = stale[key]

    edit_manifest(s3_store, new.manifest_key, reuse)
    code, report = verify(s3_store, new.manifest.backup_id, capsys)
    # Then the restore has fewer rows than the manifest claims
    assert code == 1
    assert failed_subjects(report, "row_count") == {"public.orders"}
    assert_torn_down(isolated_tmp)


def test_false_operator_assertion_fails(
    shop: SourceDatabase, s3_store: S3Store, isolated_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, result = take_backup(shop, s3_store)
    code, report = verify(
        s3_store,
        result.manifest.backup_id,
        capsys,
        "--assert",
        "SELECT count(*) > 0 FROM public.orders",
        "--assert",
        "SELECT count(*) > 5000 FROM public.orders",
    )
    assert code == 1
    assert failed_subjects(report, "assertion") == {"SELECT count(*) > 5000 FROM public.orders"}
    assert failed_checks(report) == {"assertion"}
    assert_torn_down(isolated_tmp)


def test_stale_data_fails_freshness(
    shop: SourceDatabase, s3_store: S3Store, isolated_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a database whose newest order is three days old at backup time
    shop.execute("UPDATE orders SET created_at = now() - interval '3 days' - id * interval '1 s'")
    _, result = take_backup(shop, s3_store)
    # When verified with a 26h freshness limit (and a 4 day one that holds)
    code, report = verify(
        s3_store,
        result.manifest.backup_id,
        capsys,
        "--fresh",
        "orders.created_at=26h",
        "--fresh",
        "public.orders.created_at=4d",
    )
    # Then only the 26h limit fails
    assert code == 1
    assert failed_subjects(report, "freshness") == {"orders.created_at=26h"}
    assert failed_checks(report) == {"freshness"}
    assert_torn_down(isolated_tmp)


def test_unexpected_exception_mid_restore_still_tears_down(
    shop: SourceDatabase,
    s3_store: S3Store,
    isolated_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a restore step that blows up with an error nobody anticipated

    def explode(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    store, result = take_backup(shop, s3_store)
    monkeypatch.setattr(verify_module, "restore_into", explode)
    # When verification runs, the error escapes...
    with pytest.raises(RuntimeError, match="disk on fire"):
        verify_module.verify_backup(store, result.manifest.backup_id)
    # ...and still no cluster, process or file outlives it
    assert_torn_down(isolated_tmp)


def test_archive_not_encrypted_as_recorded_fails_encryption(
    shop: SourceDatabase, s3_store: S3Store, isolated_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the same archive bytes re-stored with SSE-S3 instead of the recorded KMS key
    _, result = take_backup(shop, s3_store)
    key = result.manifest.archive.key
    body = s3_store.s3.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read()
    s3_store.s3.put_object(
        Bucket=s3_store.bucket, Key=key, Body=body, ServerSideEncryption="AES256"
    )
    code, report = verify(s3_store, result.manifest.backup_id, capsys)
    # Then only the encryption check fails, before any instance existed
    assert code == 1 and failed_checks(report) == {"integrity.encryption"}
    assert report["instance"] == {}
    assert_torn_down(isolated_tmp)
