"""The record function publishes the measured recovery time and recovery point age."""

from __future__ import annotations

from types import ModuleType

import entry
import pytest

from backproof.contract import METRIC_RECOVERY_POINT_AGE, METRIC_RECOVERY_SECONDS

from .conftest import LambdaContext, event
from .test_handlers import emf


def test_record_publishes_recovery_time_and_point(
    handlers: dict[str, ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    handlers["record"].handler(event("handlers/record-verification"), LambdaContext())
    (doc,) = emf(capsys.readouterr().out)
    assert doc["VerificationSucceeded"] == 1.0 and doc["RestoreSeconds"] == 600.0
    assert doc[METRIC_RECOVERY_SECONDS] == 700.0
    assert doc[METRIC_RECOVERY_POINT_AGE] == 5400.0


def test_the_verify_task_holds_the_run_against_the_configured_targets() -> None:
    request = {
        "database": "orders",
        "backup_id": "b1",
        "rto_target_minutes": 60,
        "rpo_target_minutes": 2280,
        "target": {"host": "bp-x.rds", "port": 5432, "secret_arn": "rds"},
    }
    secrets = {"rds": {"username": "backproof", "password": "pw"}}
    invocation = entry.build("verify", request, secrets.__getitem__, "s3://bucket", None)
    argv = invocation.argv
    assert argv[argv.index("--rto-target") + 1] == "60m"
    assert argv[argv.index("--rpo-target") + 1] == "2280m"
