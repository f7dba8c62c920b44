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
from .test_resources import resources

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
    assert "s3:PutObjectRetention" in text and "s3:GetObjectRetention" in text
