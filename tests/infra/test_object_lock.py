"""Object Lock per tier: configuration, the bucket created with Object Lock, the task told the
policy and allowed to set retention, retention allowed to read it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError, load

from .conftest import cdk_context, synthesize
from .policies import backup_bucket, task_role
from .test_resources import resources
from .test_task_roles import BACKUP_ID, RUN_ID

LOCK = {"daily": {"mode": "GOVERNANCE", "days": 7}, "monthly": {"mode": "COMPLIANCE", "days": 365}}


def example(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(cdk_context()["backproof"])
    raw.update(changes)
    return raw


def test_object_lock_per_tier_is_read_and_handed_to_the_engine_as_one_spec() -> None:
    config = load(example(object_lock=LOCK))
    assert config.object_lock == {"daily": ("GOVERNANCE", 7), "monthly": ("COMPLIANCE", 365)}
    assert config.object_lock_spec == "daily=GOVERNANCE:7,monthly=COMPLIANCE:365"
    assert load(example()).object_lock == {}  # off by default, object_lock_days unchanged


@pytest.mark.parametrize(
    ("lock", "message"),
    [
        ({"hourly": {"mode": "GOVERNANCE", "days": 1}}, "object_lock.hourly"),
        ({"daily": {"mode": "LEGAL", "days": 1}}, "object_lock.daily.mode"),
        ({"daily": {"mode": "GOVERNANCE", "days": 0}}, "object_lock.daily.days"),
        ({"daily": {"mode": "GOVERNANCE"}}, "days"),
    ],
)
def test_object_lock_mistakes_are_named(lock: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(example(object_lock=lock))


def test_the_stack_enables_object_lock_and_grants_what_it_needs(
    placeholder_layer: Path, tmp_path: Path
) -> None:
    context = {**cdk_context(), "backproof": example(object_lock=LOCK)}
    synth = synthesize(context, placeholder_layer, tmp_path / "cdk.out")
    buckets = [
        b["Properties"]
        for b in resources(synth.template, "AWS::S3::Bucket").values()
        if b["Properties"].get("ObjectLockEnabled")
    ]
    assert len(buckets) == 1  # the backup bucket, with no default retention of its own
    assert "ObjectLockConfiguration" not in buckets[0]
    text = json.dumps(synth.template)
    assert '"BACKPROOF_OBJECT_LOCK"' in text and "daily=GOVERNANCE:7,monthly=COMPLIANCE:365" in text
    assert "s3:GetObjectRetention" in text  # retention reads the retain-until dates


def test_each_task_sets_retention_only_on_what_it_writes_with_a_tier(
    placeholder_layer: Path, tmp_path: Path
) -> None:
    # Given a stack with Object Lock per tier
    context = {**cdk_context(), "backproof": example(object_lock=LOCK)}
    template = synthesize(context, placeholder_layer, tmp_path / "cdk.out").template
    bucket = backup_bucket(template)
    backup = f"{bucket}/backups/orders/2026/11/21/{BACKUP_ID}"
    safety = f"{bucket}/safety/db.example.com-5432-orders_staging/2026/11/21/{BACKUP_ID}"
    evidence = f"{backup}/verifications/{RUN_ID}.json"
    records = [
        f"{bucket}/restores/2026/11/21/{RUN_ID}.json",
        f"{bucket}/snapshots/orders/2026/11/21/{RUN_ID}.json",
        f"{bucket}/point-in-time/orders/2026/11/21/{RUN_ID}.json",
    ]
    # Then each task may set an object's retention (PutObject with a lock date) exactly where
    # it writes objects of a tier: a backup its backup, a verification its evidence, a restore
    # the safety backup; records are written without a tier, so without retention
    expected = {
        "backup": [f"{backup}/archive.dump.zst", f"{backup}/manifest.json"],
        "verify": [evidence, f"{evidence}.sig"],
        "restore": [f"{safety}/archive.dump.zst", f"{safety}/manifest.json"],
        "native": [],
    }
    everything = [
        f"{backup}/archive.dump.zst",
        f"{backup}/manifest.json",
        evidence,
        f"{evidence}.sig",
        f"{safety}/archive.dump.zst",
        f"{safety}/manifest.json",
        *records,
    ]
    for action, allowed in expected.items():
        role = task_role(template, action)
        retained = [arn for arn in everything if role.allows("s3:PutObjectRetention", arn)]
        assert retained == allowed, action
