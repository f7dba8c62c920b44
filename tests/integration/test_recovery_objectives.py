"""Recovery time and point measured end to end on a real verification, held against the
targets in the evidence and in `backproof status`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backproof.cli import main
from backproof.store import open_store

from ..conftest import S3Store, SourceDatabase, take_backup


def test_verification_measures_recovery_against_targets(
    source_db: SourceDatabase,
    s3_store: S3Store,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a backup of a small database
    source_db.execute("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100);")
    _, result = take_backup(source_db, s3_store)
    # When it is verified against a generous RTO and an impossible RPO
    code = main(
        [
            "verify",
            "latest",
            "--store",
            s3_store.url,
            "--database-name",
            "shop",
            "--rto-target",
            "60m",
            "--rpo-target",
            "1s",
        ]
    )
    out = capsys.readouterr().out
    # Then the run still verifies (a missed objective is not a defect of the backup)
    assert code == 0, out
    assert "recovery: RTO" in out and "missed" in out
    # and the evidence holds both measures with their targets and verdicts
    stored = open_store(s3_store.url).find(result.manifest.backup_id)
    (key,) = stored.verification_keys
    report = json.loads(s3_store.s3.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read())
    recovery = report["recovery"]
    timings = report["timings"]
    assert 0 < recovery["recovery_seconds"] < timings["total_seconds"]
    assert recovery["recovery_seconds"] >= timings["restore_seconds"] + timings["checks_seconds"]
    assert recovery["recovery_point_age_seconds"] > 1
    assert recovery["rto"] == "met" and recovery["rto_target_seconds"] == 3600
    assert recovery["rpo"] == "missed" and recovery["rpo_target_seconds"] == 1
    # And status shows both against its own targets
    code = main(
        ["status", "--store", s3_store.url, "--rto-target", "60m", "--rpo-target", "1s", "--json"]
    )
    shop = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["databases"][0]
    assert shop["recovery_seconds"] == recovery["recovery_seconds"] and shop["rto_met"] is True
    assert shop["recovery_point_age_seconds"] == recovery["recovery_point_age_seconds"]
    assert shop["rpo_met"] is False
    assert "newest verified backup older than the recovery-point target" in shop["problems"]
    assert main(["status", "--store", s3_store.url, "--rpo-target", "1s"]) == 0
    text = capsys.readouterr().out
    assert "DATA LOSS (RPO)" in text and "OVER" in text
