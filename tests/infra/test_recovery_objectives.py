"""RTO/RPO targets in the configuration and the RPO alarm on the measured recovery point."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra.config import ConfigError, load

from .conftest import Synth, cdk_context
from .test_resources import resources


def example() -> dict[str, Any]:
    return copy.deepcopy(cdk_context()["backproof"])


def test_rpo_target_defaults_to_the_most_frequent_schedule_plus_slack() -> None:
    raw = example()
    db = load(raw).databases[0]
    assert db.rpo_target_minutes == (24 + 14) * 60  # daily is the most frequent schedule
    assert db.settings()["rpo_target_minutes"] == db.rpo_target_minutes
    raw["databases"][0]["rpo_target_minutes"] = 90
    assert load(raw).databases[0].rpo_target_minutes == 90
    raw["databases"][0]["rpo_target_minutes"] = 0
    with pytest.raises(ConfigError, match="rpo_target_minutes"):
        load(raw)


def test_rpo_alarm_reads_the_freshest_recovery_point_of_the_day(synth: Synth) -> None:
    (props,) = [
        v["Properties"]
        for k, v in resources(synth.template, "AWS::CloudWatch::Alarm").items()
        if k.startswith("MonitoringRpoOverTargetorders")
    ]
    db = load(example()).databases[0]
    assert props["MetricName"] == "RecoveryPointAgeSeconds"
    assert props["Statistic"] == "Minimum" and props["Period"] == 86400
    assert props["Threshold"] == db.rpo_target_minutes * 60
    assert {"Name": "database", "Value": "orders"} in props["Dimensions"]
