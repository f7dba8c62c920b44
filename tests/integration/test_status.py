"""`backproof status` as a health check: exit codes and what it reports, on real backups."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backproof.cli import main
from backproof.jobs.status import store_status
from backproof.store import BackupStore, open_store

from ..conftest import S3Store, SourceDatabase, take_backup
from ..support.backdate import backdate


def backup(db: SourceDatabase, where: S3Store, tier: str = "daily", name: str = "shop") -> str:
    return take_backup(db, where, name=name, tier=tier, fingerprints=False)[1].manifest.backup_id


def verdict(
    store: BackupStore, backup_id: str, verdict: str, restore_seconds: float = 3.0, **extra: Any
) -> None:
    """Store a verification run's evidence, as a verification would."""
    report = {
        "verdict": verdict,
        "passed": verdict == "verified",
        "backup_id": backup_id,
        "finished_at": datetime.now(UTC).isoformat(),
        "timings": {"restore_seconds": restore_seconds},
        **extra,
    }
    store.write_verification(store.find(backup_id), report)


def status(
    where: S3Store, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(["status", "--store", where.url, "--json", *args])
    out = capsys.readouterr().out.strip().splitlines()
    return code, (json.loads(out[-1]) if out else {})


@pytest.fixture
def db(source_db: SourceDatabase) -> SourceDatabase:
    source_db.execute("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)")
    return source_db


def test_fresh_verified_backup_is_healthy(
    db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a backup verified a moment ago
    store = open_store(s3_store.url)
    first = backup(db, s3_store)
    verdict(store, first, "verified", restore_seconds=4.5)
    # When status runs as a health check
    code, report = status(s3_store, capsys, "--rto-target", "60m")
    # Then it exits 0, with ages in seconds
    assert code == 0 and report["healthy"] is True
    (shop,) = report["databases"]
    assert shop["database"] == "shop" and shop["fresh"] is True
    assert shop["newest_verified_backup"]["backup_id"] == first
    assert 0 <= shop["verified_age_seconds"] < 600
    assert shop["allowed_age_seconds"] == 26 * 3600
    assert shop["last_runs"]["verified"]["backup_id"] == first
    assert shop["last_runs"]["failed"] is None
    assert shop["restore_seconds"] == 4.5 and shop["rto_target_seconds"] == 3600
    assert shop["rto_met"] is True
    assert [t["backup_id"] for t in shop["size_trend"]] == [first]
    assert shop["size_trend"][0]["size"] > 0 and shop["problems"] == []


def test_stale_verified_backup_fails_the_check_unless_allowed(
    db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the newest verified backup 30 hours old, and a newer one that failed verification
    store = open_store(s3_store.url)
    old = backdate(store, s3_store.s3, backup(db, s3_store), timedelta(hours=30))
    verdict(store, old, "verified")
    newer = backup(db, s3_store)
    failed_check = {"check": "row_count", "subject": "public.t", "expected": 100, "found": 99}
    verdict(store, newer, "failed", failed_checks=[failed_check])
    # When status runs with the default allowed age (26 h), Then it exits 1
    code, report = status(s3_store, capsys)
    assert code == 1 and report["healthy"] is False
    (shop,) = report["databases"]
    assert shop["newest_backup"]["backup_id"] == newer
    assert shop["newest_backup"]["verification"] == "failed"
    assert shop["newest_verified_backup"]["backup_id"] == old
    assert 30 * 3600 <= shop["verified_age_seconds"] < 31 * 3600
    assert shop["last_runs"]["failed"]["backup_id"] == newer
    assert "row_count public.t: expected 100, found 99" in shop["last_runs"]["failed"]["detail"]
    assert shop["problems"] == ["newest verified backup is older than the allowed 26h"]
    # And a larger allowance, for all databases or for this one, makes it pass
    assert status(s3_store, capsys, "--max-age", "2d")[0] == 0
    assert status(s3_store, capsys, "--max-age", "1h", "--max-age", "shop=36h")[0] == 0
    # The terminal form says what is wrong and what failed
    capsys.readouterr()
    assert main(["status", "--store", s3_store.url]) == 1
    text = capsys.readouterr().out
    assert "STALE" in text and "shop: newest verified backup is older than the allowed 26h" in text
    assert f"shop: last failed ({newer}): row_count public.t" in text


def test_never_verified_database_fails_the_check(
    db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a backup that was never verified
    backup(db, s3_store)
    # Then status exits 1 and says so
    code, report = status(s3_store, capsys)
    assert code == 1
    (shop,) = report["databases"]
    assert shop["newest_verified_backup"] is None and shop["verified_age_seconds"] is None
    assert shop["problems"] == ["never verified"]
    # And a database named but absent from the store is reported, not silently skipped
    code, report = status(s3_store, capsys, "--database-name", "billing")
    assert code == 1 and report["databases"][0]["problems"] == ["no backups"]


def test_a_run_that_could_not_verify_does_not_count_as_verified(
    db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a fresh backup whose only verification run could not verify (no instance came up)
    store = open_store(s3_store.url)
    only = backup(db, s3_store)
    verdict(store, only, "could-not-verify", error="temporary instance never became available")
    # Then the database has no verified backup: status exits 1
    code, report = status(s3_store, capsys)
    assert code == 1
    (shop,) = report["databases"]
    assert shop["newest_verified_backup"] is None
    assert shop["last_runs"]["verified"] is None


def test_safety_backups_never_count(
    db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given shop's scheduled backup verified 30 h ago, and a fresh verified safety backup filed
    # beside it (as releases before the safety namespace filed them)
    store = open_store(s3_store.url)
    old = backdate(store, s3_store.s3, backup(db, s3_store), timedelta(hours=30))
    verdict(store, old, "verified")
    verdict(store, backup(db, s3_store, tier="safety"), "verified")
    # and a restore target whose only backups there are safety backups
    backup(db, s3_store, tier="safety", name="shop-staging")
    # Then shop is stale (the safety backup is not its protection) and the target is not listed
    code, report = status(s3_store, capsys)
    assert code == 1
    assert [d["database"] for d in report["databases"]] == ["shop"]
    (shop,) = report["databases"]
    assert shop["newest_backup"]["backup_id"] == old
    assert shop["newest_verified_backup"]["backup_id"] == old
    assert shop["backups"] == 1


def test_rto_and_size_trend(
    db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given three verified backups of a growing database, the last restore slower than target
    store = open_store(s3_store.url)
    ids = []
    for rows in (1000, 20000, 60000):
        db.execute(f"INSERT INTO t SELECT generate_series(1, {rows})")
        ids.append(backup(db, s3_store))
        verdict(store, ids[-1], "verified", restore_seconds=90.0)
    # When status runs with a one-minute recovery-time target
    report = store_status(store, rto_target=timedelta(minutes=1)).to_dict()
    (shop,) = report["databases"]
    # Then the restore is reported over target (a warning: freshness alone sets the exit code)
    assert shop["rto_met"] is False and shop["restore_backup_id"] == ids[-1]
    assert "last restore slower than the recovery-time target" in shop["problems"]
    assert report["healthy"] is True
    sizes = [t["size"] for t in shop["size_trend"]]
    assert [t["backup_id"] for t in shop["size_trend"]] == ids and sizes == sorted(sizes)
    # And the terminal shows the trend as a sparkline, rising
    capsys.readouterr()
    assert main(["status", "--store", s3_store.url, "--rto-target", "1m"]) == 0
    text = capsys.readouterr().out
    assert "▁" in text and "█" in text and "OVER" in text


@pytest.mark.parametrize(
    "args", [["--max-age", "26x"], ["--max-age", "=26h"], ["--rto-target", "soon"]]
)
def test_bad_input_exits_2(
    s3_store: S3Store, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    assert main(["status", "--store", s3_store.url, *args]) == 2
    assert capsys.readouterr().err.startswith("backproof: ")


def test_an_unknown_flag_exits_2(s3_store: S3Store) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["status", "--store", s3_store.url, "--bogus"])
    assert caught.value.code == 2


def test_an_empty_store_is_not_healthy(
    s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # A health check pointed at the wrong prefix must not pass
    assert main(["status", "--store", s3_store.url]) == 1
    assert "nothing is protected" in capsys.readouterr().out
