"""Publish a backup, verification or restore outcome as metrics (EMF) per database.

The alarms in infra/monitoring.py read these names; the dashboard graphs them.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from backproof import contract
from backproof.model.report import VERIFIED

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
        metrics.add_metric(name=contract.METRIC_BACKUP_SUCCEEDED, unit=MetricUnit.Count, value=1)
        metrics.add_metric(
            name=contract.METRIC_BACKUP_BYTES,
            unit=MetricUnit.Bytes,
            value=float(result.get("size") or 0),
        )
        metrics.add_metric(
            name=contract.METRIC_BACKUP_SECONDS,
            unit=MetricUnit.Seconds,
            value=float(result.get("seconds") or 0),
        )
        return
    verified = result.get("verdict") == VERIFIED
    metrics.add_metric(
        name=(
            contract.METRIC_VERIFICATION_SUCCEEDED
            if verified
            else contract.METRIC_VERIFICATION_FAILED
        ),
        unit=MetricUnit.Count,
        value=1,
    )
    metrics.add_metric(
        name=contract.METRIC_CHECK_FAILURES,
        unit=MetricUnit.Count,
        value=len(result.get("failed_checks") or []),
    )
    seconds = (result.get("timings") or {}).get("restore_seconds")
    if seconds is not None:
        metrics.add_metric(
            name=contract.METRIC_RESTORE_SECONDS, unit=MetricUnit.Seconds, value=float(seconds)
        )
    recovery = result.get("recovery") or {}
    for name, key in (
        (contract.METRIC_RECOVERY_SECONDS, "recovery_seconds"),
        (contract.METRIC_RECOVERY_POINT_AGE, "recovery_point_age_seconds"),
    ):
        if recovery.get(key) is not None:
            metrics.add_metric(name=name, unit=MetricUnit.Seconds, value=float(recovery[key]))


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
            "backup": contract.METRIC_BACKUP_FAILED,
            "verification": contract.METRIC_VERIFICATION_FAILED,
            "restore": contract.METRIC_RESTORE_FAILED,
        }[kind]
        if kind == "verification" and error.get("Error") == contract.ERROR_COULD_NOT_VERIFY:
            # The run could not finish: no defect is shown, so the failure alarm stays quiet.
            name = contract.METRIC_VERIFICATION_INCOMPLETE
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        if kind == "verification":
            metrics.add_metric(
                name=contract.METRIC_CHECK_FAILURES,
                unit=MetricUnit.Count,
                value=_failed_checks(error),
            )
        logger.warning(
            "outcome: failed",
            extra={"kind": kind, "database": database, "error": error.get("Error")},
        )
        return {"kind": kind, "database": database, "outcome": "failed"}
    _success(kind, field(event, "result", dict))
    logger.info("outcome: succeeded", extra={"kind": kind, "database": database})
    return {"kind": kind, "database": database, "outcome": "succeeded"}
