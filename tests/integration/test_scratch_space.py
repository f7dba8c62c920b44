"""Scratch space is checked before a verification starts: a restore that would run out of disk
is refused up front as could-not-verify, with the numbers, and nothing is created."""

from __future__ import annotations

import json
from pathlib import Path

from backproof.jobs.verify import verify_backup
from backproof.model.report import COULD_NOT_VERIFY

from ..conftest import S3Store, SourceDatabase, take_backup
from .conftest import assert_torn_down


def test_a_backup_too_big_for_the_disk_is_not_restored_and_not_called_defective(
    source_db: SourceDatabase, s3_store: S3Store, isolated_tmp: Path
) -> None:
    # Given a backup whose manifest says the source database holds 100 TiB
    source_db.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g")
    store, result = take_backup(source_db, s3_store)
    assert result.manifest.server["database_size"] > 0  # recorded by every backup
    key = result.manifest_key
    manifest = json.loads(s3_store.s3.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read())
    manifest["server"]["database_size"] = 100 << 40
    s3_store.s3.put_object(Bucket=s3_store.bucket, Key=key, Body=json.dumps(manifest).encode())
    # When it is verified on this machine
    report = verify_backup(store, result.manifest.backup_id)
    # Then the run could not verify, saying how much was needed and how much was free, no
    # instance was created, and the backup's status is untouched
    assert report.verdict == COULD_NOT_VERIFY and report.defects == []
    (space,) = [c for c in report.checks if c.subject == "scratch space"]
    assert space.failed and "GiB needed" in space.detail and "free on" in space.detail
    assert report.timings.get("restore_seconds") is None
    assert store.find(result.manifest.backup_id) is not None
    assert store.load_verification(store.find(result.manifest.backup_id)) is None
    assert_torn_down(isolated_tmp)
