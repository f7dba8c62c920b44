"""One NoVerifiedBackup alarm per database of an instance, kept in step by the freshness
function: the stack cannot know an instance's databases, so alarms for those found are
created here (same metric, threshold and action as the stack's own), and removed once a
database leaves the instance, so a dropped database never pages about its old backups."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from backproof.contract import METRIC_SECONDS_SINCE_VERIFIED, METRICS_NAMESPACE

from .clients import cloudwatch

ENV = "BACKPROOF_MEMBER_ALARMS"


@dataclass(frozen=True)
class MemberAlarms:
    """How the stack's NoVerifiedBackup alarms are made, for the instances' databases."""

    prefix: str  # "<deployment>-NoVerifiedBackup-": the freshness role may manage only these
    topic_arn: str
    service: str
    period_s: int
    periods: int

    @classmethod
    def from_environ(cls) -> MemberAlarms | None:
        raw = os.environ.get(ENV, "").strip()
        return cls(**json.loads(raw)) if raw else None

    def name(self, database: str) -> str:
        return f"{self.prefix}{database}"

    def sync(self, instance: str, members: list[str], threshold_s: int) -> dict[str, list[str]]:
        """Create the missing alarms of `instance`'s current `members`, delete those of
        databases no longer among them; what was done."""
        client = cloudwatch()
        existing = {
            a["AlarmName"]
            for page in client.get_paginator("describe_alarms").paginate(
                AlarmNamePrefix=self.name(f"{instance}."), AlarmTypes=["MetricAlarm"]
            )
            for a in page["MetricAlarms"]
        }
        wanted = {self.name(m): m for m in members}
        created = sorted(set(wanted) - existing)
        for alarm in created:
            client.put_metric_alarm(**self._definition(alarm, wanted[alarm], threshold_s))
        removed = sorted(existing - set(wanted))
        if removed:
            client.delete_alarms(AlarmNames=removed)
        return {"created": created, "removed": removed}

    def _definition(self, alarm: str, database: str, threshold_s: int) -> dict[str, Any]:
        hours = threshold_s // 3600
        return {
            "AlarmName": alarm,
            "AlarmDescription": (
                f"{database}: the newest verified backup is older than {hours} h (its "
                "instance's most frequent schedule plus slack), or the freshness function "
                "stopped reporting. Run `backproof status`, check the instance's latest backup "
                "and this database's verify executions. Made by the freshness function for a "
                "database found in the instance; removed when the database leaves it."
            ),
            "Namespace": METRICS_NAMESPACE,
            "MetricName": METRIC_SECONDS_SINCE_VERIFIED,
            "Dimensions": [
                {"Name": "service", "Value": self.service},
                {"Name": "database", "Value": database},
            ],
            "Statistic": "Maximum",
            "Period": self.period_s,
            "EvaluationPeriods": self.periods,
            "DatapointsToAlarm": self.periods,
            "Threshold": float(threshold_s),
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "breaching",
            "AlarmActions": [self.topic_arn],
        }
