"""Publish a backup, verification or restore outcome as metrics (EMF) per database.

The alarms in infra/monitoring.py read these names; the dashboard graphs them.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from .events import field
from .observability import logger, metrics, tracer

KINDS = ("backup", "verification", "restore")


def _failed_checks(error: dict[str, Any]) -> int:
    """A verification that ran and found differences reports them as JSON in the cause."""
    try:
        cause = json.loads(error.get("Cause") or "")
    except (TypeError, ValueError):
        return 0
    return len(cause.get("failed_checks") or []) if isinstance(cause, dict) else 0


def _success(kind: str, result: dict[str, Any]) -> None:
    if kind == "backup":
        metrics.add_metric(name="BackupSucceeded", unit=MetricUnit.Count, value=1)
        metrics.add_metric(
            name="BackupBytes", unit=MetricUnit.Bytes, value=float(result.get("size") or 0)
        )
        metrics.add_metric(
            name="BackupSeconds", unit=MetricUnit.Seconds, value=float(result.get("seconds") or 0)
        )
        return
    verified = result.get("verdict") == "verified"
    metrics.add_metric(
        name="VerificationSucceeded" if verified else "VerificationFailed",
        unit=MetricUnit.Count,
        value=1,
    )
    metrics.add_metric(
        name="CheckFailures", unit=MetricUnit.Count, value=len(result.get("failed_checks") or [])
    )
    seconds = (result.get("timings") or {}).get("restore_seconds")
    if seconds is not None:
        metrics.add_metric(name="RestoreSeconds", unit=MetricUnit.Seconds, value=float(seconds))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    kind = field(event, "kind")
    if kind not in KINDS:
        raise ValueError(f"event field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    database = field(event, "database")
    metrics.add_dimension(name="database", value=database)
    error = field(event, "error", dict, default=None)
    if error is not None:
        name = {
            "backup": "BackupFailed",
            "verification": "VerificationFailed",
            "restore": "RestoreFailed",
        }[kind]
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        if kind == "verification":
            metrics.add_metric(
                name="CheckFailures", unit=MetricUnit.Count, value=_failed_checks(error)
            )
        logger.warning(
            "outcome: failed",
            extra={"kind": kind, "database": database, "error": error.get("Error")},
        )
        return {"kind": kind, "database": database, "outcome": "failed"}
    _success(kind, field(event, "result", dict))
    logger.info("outcome: succeeded", extra={"kind": kind, "database": database})
    return {"kind": kind, "database": database, "outcome": "succeeded"}
