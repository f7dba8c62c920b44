"""An entry declared as an instance: the freshness function learns it, and may make (and
remove) NoVerifiedBackup alarms for the databases it finds, and no other alarms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import cdk_context, synthesize


def _freshness(template: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    resources = template["Resources"]
    (fn,) = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"]["Handler"] == "handlers.freshness.handler"
    ]
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        s
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"].get("Roles", [])
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    return fn["Properties"]["Environment"]["Variables"], statements


def _cloudwatch(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def actions(s: dict[str, Any]) -> list[str]:
        return s["Action"] if isinstance(s["Action"], list) else [s["Action"]]

    return [s for s in statements if any(a.startswith("cloudwatch:") for a in actions(s))]


def test_an_instance_lets_freshness_manage_only_its_own_alarms(
    placeholder_layer: Path, tmp_path: Path
) -> None:
    # Given the orders entry declared as every database of its instance
    context = cdk_context()
    raw = context["backproof"]
    raw["databases"][0]["databases"] = "*"
    # When the app is synthesized
    template = synthesize(context, placeholder_layer, tmp_path).template
    env, statements = _freshness(template)
    # Then the freshness function knows the instance (a day's window, the alarm's threshold)
    name, _, values = env["BACKPROOF_INSTANCES"].partition("=")
    assert name == "orders" and values.startswith("24/")
    alarms = env["BACKPROOF_MEMBER_ALARMS"]
    # and may describe, make and delete only alarms named with this deployment's prefix
    (statement,) = _cloudwatch(statements)
    assert sorted(statement["Action"]) == [
        "cloudwatch:DeleteAlarms",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:PutMetricAlarm",
    ]
    resource = json.dumps(statement["Resource"])
    assert f":alarm:backproof-{raw['deployment']}-NoVerifiedBackup-*" in resource
    assert "NoVerifiedBackup" in json.dumps(alarms)


def test_without_an_instance_freshness_touches_no_alarm(
    placeholder_layer: Path, tmp_path: Path
) -> None:
    template = synthesize(cdk_context(), placeholder_layer, tmp_path).template
    env, statements = _freshness(template)
    assert "BACKPROOF_INSTANCES" not in env and "BACKPROOF_MEMBER_ALARMS" not in env
    assert _cloudwatch(statements) == []
