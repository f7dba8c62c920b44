"""`backproof backup --wait-verified`: the exit code says verified (0), failed (1), could not
verify (3) or timed out waiting for the deployed workflow (4)."""

from __future__ import annotations

import json
import types
from typing import Any

import boto3
import pytest
from moto.core.config import default_user_config
from moto.stepfunctions.models import stepfunctions_backends

from backproof.cli import main
from backproof.cli import wait_verified as wait_module
from backproof.errors import JobFailed
from backproof.instances.local import LocalInstance
from tests.conftest import S3Store, SourceDatabase

ACCOUNT, REGION = "123456789012", "us-east-1"


def seed(db: SourceDatabase) -> None:
    db.execute(
        "CREATE TABLE public.orders (id int PRIMARY KEY, created_at timestamptz DEFAULT now());"
        "INSERT INTO public.orders (id) SELECT generate_series(1, 50);"
    )


def backup(db: SourceDatabase, store: S3Store) -> list[str]:
    return ["backup", "--source-url", db.url, "--store", store.url, "--database-name", "orders"]


def last_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return dict(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    ("checks", "code", "verdict"),
    [
        (["--assert", "SELECT count(*) = 50 FROM public.orders"], 0, "verified"),
        (["--assert", "SELECT count(*) = 51 FROM public.orders"], 1, "failed"),
    ],
)
def test_a_local_verification_decides_the_exit_code(
    s3_store: S3Store,
    source_db: SourceDatabase,
    capsys: pytest.CaptureFixture[str],
    checks: list[str],
    code: int,
    verdict: str,
) -> None:
    seed(source_db)
    argv = [*backup(source_db, s3_store), "--tier", "manual", "--wait-verified", *checks, "--json"]
    assert main(argv) == code
    out = last_json(capsys)
    assert out["backup_id"] and out["database"] == "orders"
    assert out["verification"]["verdict"] == verdict
    assert out["verification"]["report_key"]  # the evidence is beside the backup


def test_a_verification_that_could_not_finish_exits_3(
    s3_store: S3Store,
    source_db: SourceDatabase,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(source_db)

    def no_space(self: Any) -> Any:
        raise JobFailed("initdb: no space left on device")

    monkeypatch.setattr(LocalInstance, "provision", no_space)
    assert main([*backup(source_db, s3_store), "--wait-verified", "--json"]) == 3
    assert "no space" in last_json(capsys)["verification"]["error"]


def test_check_flags_without_wait_verified_are_refused_before_the_backup(
    s3_store: S3Store, source_db: SourceDatabase
) -> None:
    seed(source_db)
    assert main([*backup(source_db, s3_store), "--assert", "SELECT true"]) == 2
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:verify"
    assert main([*backup(source_db, s3_store), "--through-workflow", arn]) == 2
    assert s3_store.s3.list_objects_v2(Bucket=s3_store.bucket).get("KeyCount", 0) == 0


@pytest.fixture(autouse=True)
def recorded_executions(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's plain Step Functions backend, whose executions these tests end by hand; another
    test in the same process may have switched moto to executing definitions."""
    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": False})


def verify_machine() -> tuple[Any, str]:
    """A verify state machine in moto; how its executions end is set by each test."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    role = f"arn:aws:iam::{ACCOUNT}:role/verify"
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    arn = sfn.create_state_machine(name="verify", definition=definition, roleArn=role)
    return sfn, arn["stateMachineArn"]


def ends_as(sfn: Any, status: str | None, error: str | None = None) -> types.SimpleNamespace:
    """A Step Functions client whose executions end with `status` as soon as they start (None:
    they keep running), as the deployed verify workflow would end them."""

    def finish(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        execution = stepfunctions_backends[ACCOUNT][REGION].describe_execution(
            parsed["executionArn"]
        )
        if status is not None:
            execution.status = status
            execution.error = error
            execution.cause = json.dumps({"error": error}) if error else None
            execution.output = json.dumps({"verdict": "verified"}) if not error else None

    sfn.meta.events.register("after-call.sfn.StartExecution", finish)
    return types.SimpleNamespace(client=lambda _name: sfn)


@pytest.mark.parametrize(
    ("status", "error", "code", "verdict"),
    [
        ("SUCCEEDED", None, 0, "verified"),
        ("FAILED", "VerificationFailed", 1, "failed"),
        ("FAILED", "IntegrityFailure", 1, "failed"),
        ("FAILED", "InstanceTimeout", 3, "could-not-verify"),
        ("ABORTED", None, 3, "could-not-verify"),
        (None, None, 4, "timed-out"),
    ],
)
def test_a_verification_through_the_deployed_workflow_decides_the_exit_code(
    s3_store: S3Store,
    source_db: SourceDatabase,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    status: str | None,
    error: str | None,
    code: int,
    verdict: str,
) -> None:
    seed(source_db)
    sfn, machine = verify_machine()
    monkeypatch.setattr(wait_module, "boto3", ends_as(sfn, status, error))
    argv = [*backup(source_db, s3_store), "--wait-verified", "--through-workflow", machine]
    assert main([*argv, "--timeout", "1s", "--json"]) == code
    out = last_json(capsys)
    assert out["verification"]["verdict"] == verdict
    # the workflow was asked to verify exactly the backup just taken
    (execution,) = sfn.list_executions(stateMachineArn=machine)["executions"]
    started = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(started["input"]) == {"database": "orders", "backup_id": out["backup_id"]}
    assert out["verification"]["execution_arn"] == execution["executionArn"]
