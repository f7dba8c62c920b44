"""Verdict history: every run keeps its own evidence; a run that could not finish says nothing
about the backup; the last good backup keeps its protection from retention."""

from __future__ import annotations

import socket
from pathlib import Path

from backproof.jobs.retention import RetentionPolicy, apply_retention
from backproof.jobs.verify import verify_backup, verify_on_target
from backproof.model.report import COULD_NOT_VERIFY, VERIFIED
from backproof.pg.target import Target
from backproof.store import open_store

from ..conftest import S3Store, SourceDatabase, take_backup


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_reverifying_during_an_outage_keeps_the_last_good_backup_and_its_protection(
    source_db: SourceDatabase, s3_store: S3Store, isolated_tmp: Path
) -> None:
    # Given yesterday's backup, verified, and today's, not verified yet
    source_db.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g")
    store, good = take_backup(source_db, s3_store, tier="daily")
    assert verify_backup(store, good.manifest.backup_id).passed
    take_backup(source_db, s3_store, tier="daily")
    # When the good one is re-verified while the restore target is unreachable (an outage)
    stored = store.find(good.manifest.backup_id)
    unreachable = Target.from_params(
        host="127.0.0.1", port=closed_port(), user="x", dbname="postgres"
    )
    report = verify_on_target(store, stored, unreachable)
    # Then that run could not verify: it is kept as evidence, and says nothing about the backup
    assert report.verdict == COULD_NOT_VERIFY and report.defects == []
    again = open_store(s3_store.url).find(good.manifest.backup_id)
    listed = open_store(s3_store.url).list_backups("shop")
    first = next(b for b in listed if b.backup_id == good.manifest.backup_id)
    assert len(first.verifications) == 2
    assert [r["verdict"] for r in first.verifications] == [VERIFIED, COULD_NOT_VERIFY]
    assert first.verification is not None and first.verification["verdict"] == VERIFIED
    assert again.backup_id == good.manifest.backup_id
    # And retention keeping one daily backup still keeps the last good one
    plan = apply_retention(store, RetentionPolicy.parse("daily=1"), dry_run=True)
    kept = {d.backup_id: d.reason for d in plan.decisions if d.action == "keep"}
    assert kept[good.manifest.backup_id] == "newest verified backup of the database"


def test_a_backup_that_once_verified_stays_protected_until_a_newer_one_verifies(
    source_db: SourceDatabase, s3_store: S3Store, isolated_tmp: Path
) -> None:
    # Given a backup that verified once, then failed a later verification (its archive altered)
    source_db.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g")
    store, old = take_backup(source_db, s3_store, tier="daily")
    assert verify_backup(store, old.manifest.backup_id).passed
    key = old.manifest.archive.key
    data = bytearray(s3_store.s3.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0xFF
    s3_store.s3.put_object(Bucket=s3_store.bucket, Key=key, Body=bytes(data))
    assert verify_backup(store, old.manifest.backup_id).verdict == "failed"
    _, new = take_backup(source_db, s3_store, tier="daily")
    policy = RetentionPolicy.parse("daily=1")
    # When retention runs before the newer backup verifies, Then the old one is kept
    plan = apply_retention(store, policy, dry_run=True)
    assert old.manifest.backup_id not in {d.backup_id for d in plan.to_delete}
    # And once the newer one verifies, the old one may go
    assert verify_backup(store, new.manifest.backup_id).passed
    plan = apply_retention(store, policy, dry_run=True)
    assert old.manifest.backup_id in {d.backup_id for d in plan.to_delete}
