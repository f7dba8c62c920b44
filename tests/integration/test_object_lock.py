"""S3 Object Lock per tier: objects are written under retention, and retention keeps (and
reports) backups still locked instead of deleting them or failing."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backproof.cli import main
from backproof.errors import BadInput
from backproof.jobs.retention import RetentionPolicy, apply_retention
from backproof.store import open_store
from backproof.store.locking import LockPolicy

from ..conftest import S3Store, SourceDatabase, take_backup

POLICY = "daily=GOVERNANCE:7,monthly=COMPLIANCE:365"


@pytest.fixture
def locked_store(s3_store: S3Store, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    """A bucket created with Object Lock enabled (moto), and the policy in the environment as
    the deployed task has it."""
    bucket = f"locked-{secrets.token_hex(4)}"
    s3_store.s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    monkeypatch.setenv("BACKPROOF_OBJECT_LOCK", POLICY)
    return S3Store(bucket, f"s3://{bucket}/team-a", s3_store.kms_key_id, s3_store.s3, s3_store.kms)


def _head(store: S3Store, key: str) -> dict[str, Any]:
    return dict(store.s3.head_object(Bucket=store.bucket, Key=key))


def test_every_object_is_written_under_its_tiers_lock(
    source_db: SourceDatabase, locked_store: S3Store
) -> None:
    source_db.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
    before = datetime.now(UTC)
    _, daily = take_backup(source_db, locked_store, tier="daily", fingerprints=False)
    _, weekly = take_backup(source_db, locked_store, tier="weekly", fingerprints=False)
    head = _head(locked_store, daily.manifest_key)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    until = head["ObjectLockRetainUntilDate"]
    # S3 keeps whole seconds
    assert before + timedelta(days=7, seconds=-1) <= until <= datetime.now(UTC) + timedelta(days=7)
    # a tier without a lock is written without one
    assert "ObjectLockMode" not in _head(locked_store, weekly.manifest_key)


def test_multipart_uploads_carry_the_lock(locked_store: S3Store) -> None:
    store = open_store(locked_store.url)
    calls: list[dict[str, Any]] = []
    real = store.client.create_multipart_upload  # type: ignore[attr-defined]

    def spy(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    store.client.create_multipart_upload = spy  # type: ignore[attr-defined]
    store.open_upload("team-a/x/archive", tier="monthly").abort()
    assert calls[0]["ObjectLockMode"] == "COMPLIANCE"
    assert calls[0]["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=364)


def test_retention_keeps_locked_backups_and_reports_them(
    source_db: SourceDatabase, locked_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given three locked daily backups and two unlocked weekly ones
    source_db.execute("CREATE TABLE t (id int)")
    daily = [
        take_backup(source_db, locked_store, tier="daily", fingerprints=False)[1] for _ in range(3)
    ]
    weekly = [
        take_backup(source_db, locked_store, tier="weekly", fingerprints=False)[1] for _ in range(2)
    ]
    store = open_store(locked_store.url)
    # When retention wants only the newest of each tier
    plan = apply_retention(store, RetentionPolicy.parse("daily=1,weekly=1"), dry_run=False)
    # Then the locked dailies are kept with their date, not failed and not hidden behind
    # delete markers; the unlocked weekly is deleted as usual
    locked = {item["backup_id"] for item in plan.locked}
    assert locked == {d.manifest.backup_id for d in daily[:2]}
    assert plan.failed == [] and plan.deleted == [weekly[0].manifest.backup_id]
    reasons = {d.backup_id: d.reason for d in plan.decisions}
    assert reasons[daily[0].manifest.backup_id].startswith("locked until ")
    remaining = {b.backup_id for b in store.list_backups()}
    assert {d.manifest.backup_id for d in daily} <= remaining
    markers = locked_store.s3.list_object_versions(Bucket=locked_store.bucket)
    assert not [m for m in markers.get("DeleteMarkers", []) if "/daily" in m["Key"]]
    # And the command exits 0 (a locked backup is not a failure) and says so
    code = main(["retention", "--store", locked_store.url, "--keep", "daily=1", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(out["locked"]) == 2
    # Once the retention has passed, the backup goes
    later = datetime.now(UTC) + timedelta(days=8)
    plan = apply_retention(store, RetentionPolicy.parse("daily=1"), now=later, dry_run=True)
    assert plan.locked == [] and len(plan.to_delete) == 2


@pytest.mark.parametrize(
    "text", ["daily=7", "hourly=GOVERNANCE:7", "daily=FOREVER:7", "daily=GOVERNANCE:0"]
)
def test_a_malformed_lock_policy_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match="object lock"):
        LockPolicy.parse(text)


def test_backup_with_a_malformed_lock_exits_2(source_db: SourceDatabase, s3_store: S3Store) -> None:
    code = main(
        [
            "backup",
            "--source-url",
            source_db.url,
            "--store",
            s3_store.url,
            "--object-lock",
            "daily=SOMETIMES:3",
        ]
    )
    assert code == 2
