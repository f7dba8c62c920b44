"""A backup that counts only once verified, for a step before a migration or a deployment
(`backproof backup --wait-verified`): verify it right away, locally or through the deployed
verify workflow, and say which of verified, failed, could-not-verify or timed-out it was."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..contract import ERROR_VERIFICATION_FAILED
from ..errors import BadInput
from ..model.report import COULD_NOT_VERIFY, FAILED, VERIFIED

TIMED_OUT = "timed-out"
# Errors of the verify workflow that show the backup itself defective; any other end of the
# execution (an instance that never came up, a task that died, an aborted run) says nothing
# about the backup.
DEFECT_ERRORS = (ERROR_VERIFICATION_FAILED, "IntegrityFailure")
RUNNING = "RUNNING"


@dataclass
class WorkflowVerdict:
    verdict: str  # verified | failed | could-not-verify | timed-out
    execution_arn: str
    status: str  # the execution's status when we stopped waiting
    error: str | None = None
    cause: str | None = None
    seconds: float = 0.0
    output: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "execution_arn": self.execution_arn,
            "status": self.status,
            "error": self.error,
            "cause": (self.cause or "")[:2000] or None,
            "seconds": self.seconds,
        }


def verdict_of_execution(status: str, error: str | None) -> str:
    if status == "SUCCEEDED":
        return VERIFIED
    if status == "FAILED" and error in DEFECT_ERRORS:
        return FAILED
    return COULD_NOT_VERIFY


def verify_through_workflow(
    sfn: Any,
    state_machine_arn: str,
    *,
    database: str,
    backup_id: str,
    timeout_s: float,
    poll_s: float = 15.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WorkflowVerdict:
    """Start the deployed verify workflow on one backup and wait for its end, at most
    `timeout_s` (then TIMED_OUT: the execution goes on)."""
    started = clock()
    name = f"{database}-wait-verified-{secrets.token_hex(4)}"[-80:]
    try:
        arn = sfn.start_execution(
            stateMachineArn=state_machine_arn,
            name=name,
            input=json.dumps({"database": database, "backup_id": backup_id}),
        )["executionArn"]
    except (ClientError, BotoCoreError) as exc:
        raise BadInput(f"cannot start the verify workflow {state_machine_arn}: {exc}") from exc
    while True:
        described = sfn.describe_execution(executionArn=arn)
        status = str(described["status"])
        elapsed = round(clock() - started, 1)
        if status != RUNNING:
            error = described.get("error")
            output = json.loads(described.get("output") or "{}")
            return WorkflowVerdict(
                verdict_of_execution(status, error),
                arn,
                status,
                error=error,
                cause=described.get("cause"),
                seconds=elapsed,
                output=output if isinstance(output, dict) else {},
            )
        if elapsed >= timeout_s:
            return WorkflowVerdict(TIMED_OUT, arn, status, seconds=elapsed)
        sleep(min(poll_s, max(0.0, timeout_s - elapsed)) or poll_s)
