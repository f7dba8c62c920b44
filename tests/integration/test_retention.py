"""Retention plans against real stored backups."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from backproof.cli import main
from backproof.errors import BadInput
from backproof.jobs.retention import RetentionPolicy, apply_retention
from backproof.store import open_store

from ..conftest import S3Store, SourceDatabase, take_backup
from ..support.backdate import backdate


def test_keeps_newest_per_tier_and_the_newest_verified(
    source_db: SourceDatabase, s3_store: S3Store
) -> None:
    store = open_store(s3_store.url)
    source_db.execute("CREATE TABLE t (id int)")
    daily = [
        take_backup(source_db, s3_store, tier="daily", fingerprints=False)[1].manifest.backup_id
        for _ in range(4)
    ]
    weekly = [
        take_backup(source_db, s3_store, tier="weekly", fingerprints=False)[1].manifest.backup_id
        for _ in range(2)
    ]
    # The oldest daily is the only verified one: it must survive.
    stored = store.find(daily[0])
    store.write_verification(stored, {"verdict": "verified", "timings": {"restore_seconds": 1.0}})
    policy = RetentionPolicy.parse("daily=2,weekly=1")

    plan = apply_retention(store, policy, dry_run=True)
    assert {d.backup_id for d in plan.to_delete} == {daily[1], weekly[0]}
    assert len(store.list_backups()) == 6  # dry run deleted nothing

    plan = apply_retention(store, policy, dry_run=False)
    left = {b.backup_id for b in store.list_backups()}
    assert left == {daily[0], daily[2], daily[3], weekly[1]}
    assert sorted(plan.deleted) == sorted([daily[1], weekly[0]])
    json.dumps(plan.to_dict())


def test_incomplete_uploads_removed_only_when_old(
    source_db: SourceDatabase, s3_store: S3Store
) -> None:
    store = open_store(s3_store.url)
    source_db.execute("CREATE TABLE t (id int)")
    backup_id = take_backup(source_db, s3_store, tier="daily", fingerprints=False)[
        1
    ].manifest.backup_id
    stored = store.find(backup_id)
    s3_store.s3.delete_object(Bucket=s3_store.bucket, Key=stored.manifest_key)  # now incomplete
    young = apply_retention(store, RetentionPolicy(), dry_run=True)
    assert young.to_delete == []
    later = datetime.now(UTC) + timedelta(days=2)
    old = apply_retention(store, RetentionPolicy(), dry_run=False, now=later)
    assert [d.backup_id for d in old.to_delete] == [backup_id]
    assert s3_store.s3.list_objects_v2(Bucket=s3_store.bucket).get("Contents") is None


@pytest.mark.parametrize("text", ["daily=x", "hourly=3", "daily"])
def test_malformed_policy_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match="TIER=COUNT"):
        RetentionPolicy.parse(text)


def test_cli_dry_run_prints_plan_and_deletes_nothing(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:

    store = open_store(s3_store.url)
    source_db.execute("CREATE TABLE t (id int)")
    ids = [
        take_backup(source_db, s3_store, tier="daily", fingerprints=False)[1].manifest.backup_id
        for _ in range(2)
    ]
    assert (
        main(["retention", "--store", s3_store.url, "--keep", "daily=1", "--dry-run", "--json"])
        == 0
    )
    plan = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert plan["dry_run"] is True and plan["delete"] == 1
    assert [d["backup_id"] for d in plan["decisions"] if d["action"] == "delete"] == [ids[0]]
    assert len(store.list_backups()) == 2


def test_keeps_at_least_the_count_and_everything_younger_than_the_age_window(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given daily backups taken 12, 8 and 3 days ago and one today, none verified
    store = open_store(s3_store.url)
    source_db.execute("CREATE TABLE t (id int)")
    ages = (12, 8, 3)
    old = {
        days: backdate(
            store,
            s3_store.s3,
            take_backup(source_db, s3_store, tier="daily", fingerprints=False)[
                1
            ].manifest.backup_id,
            timedelta(days=days),
        )
        for days in ages
    }
    today = take_backup(source_db, s3_store, tier="daily", fingerprints=False)[1].manifest.backup_id
    # When retention keeps 1 daily and every daily younger than 10 days
    policy = RetentionPolicy.parse("daily=1", "daily=10")
    plan = apply_retention(store, policy, dry_run=True)
    decisions = {d.backup_id: d for d in plan.decisions}
    # Then only the backup outside both windows goes: 12 days old and not among the newest 1
    assert [d.backup_id for d in plan.to_delete] == [old[12]]
    assert decisions[old[12]].reason == "older than the newest 1 daily and older than 10 days"
    assert decisions[today].reason == "1 of 1 newest daily"
    assert decisions[old[8]].reason == "younger than 10 days (8 days old)"
    assert decisions[old[3]].action == "keep"
    # And the count still keeps the newest N however old they are
    later = datetime.now(UTC) + timedelta(days=30)
    plan = apply_retention(store, RetentionPolicy.parse("daily=2", "daily=10"), now=later)
    assert sorted(d.backup_id for d in plan.to_delete) == sorted([old[12], old[8]])
    # And the CLI takes the age window as --keep-days
    capsys.readouterr()
    args = ["retention", "--store", s3_store.url, "--keep", "daily=1", "--keep-days", "daily=10"]
    assert main([*args, "--dry-run", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [d["backup_id"] for d in cli["decisions"] if d["action"] == "delete"] == [old[12]]


def test_the_newest_verified_backup_survives_outside_both_windows(
    source_db: SourceDatabase, s3_store: S3Store
) -> None:
    # Given the only verified backup is 40 days old, with two newer unverified ones
    store = open_store(s3_store.url)
    source_db.execute("CREATE TABLE t (id int)")
    verified = backdate(
        store,
        s3_store.s3,
        take_backup(source_db, s3_store, tier="daily", fingerprints=False)[1].manifest.backup_id,
        timedelta(days=40),
    )
    store.write_verification(store.find(verified), {"verdict": "verified"})
    for _ in range(2):
        take_backup(source_db, s3_store, tier="daily", fingerprints=False)
    # When retention keeps 1 daily and 10 days, and runs for real
    plan = apply_retention(store, RetentionPolicy.parse("daily=1", "daily=10"), dry_run=False)
    # Then the old verified backup is still there, whatever the rules say
    assert verified in {b.backup_id for b in store.list_backups()}
    (decision,) = [d for d in plan.decisions if d.backup_id == verified]
    assert decision.reason == "newest verified backup of the database"


@pytest.mark.parametrize("text", ["daily=ten", "hourly=3", "daily"])
def test_malformed_age_window_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match="TIER=DAYS"):
        RetentionPolicy.parse("daily=7", text)
