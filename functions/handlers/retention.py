"""Apply grandfather-father-son retention to one database after a backup: the configured
count per tier and, where configured, an age window (`retention_days`)."""

from __future__ import annotations

from typing import Any

from backproof.contract import METRIC_BACKUPS_DELETED, METRIC_RETENTION_DELETE_FAILURES
from backproof.jobs.retention import DEFAULT_KEEP, RetentionPolicy, apply_retention
from backproof.store import SAFETY

from .aws import backups_in_use
from .clients import dynamodb
from .env import required, settings
from .events import field
from .observability import logger, metrics, tracer
from .stores import store

SETTINGS = settings()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    database = field(event, "database")
    keep = {**DEFAULT_KEEP, **{t: int(n) for t, n in field(event, "retention", dict).items()}}
    days = {t: int(n) for t, n in field(event, "retention_days", dict, default={}).items()}
    # Backups a running verification or restore holds are kept whatever the counts say.
    in_use = backups_in_use(dynamodb(), required("BACKPROOF_SLOTS_TABLE"), database)
    plan = apply_retention(
        store(),
        RetentionPolicy(keep=keep, keep_days=days),
        database=database,
        dry_run=False,
        in_use=in_use,
    )
    metrics.add_dimension(name="database", value=database)
    metrics.add_metric(name=METRIC_BACKUPS_DELETED, unit="Count", value=len(plan.deleted))
    metrics.add_metric(name=METRIC_RETENTION_DELETE_FAILURES, unit="Count", value=len(plan.failed))
    result = plan.to_dict()
    # The safety backups restores took of their targets: the newest few of each target stay.
    safety = apply_retention(store(), RetentionPolicy(), dry_run=False, namespace=SAFETY)
    result["safety"] = {"deleted": safety.deleted, "failed": safety.failed}
    logger.info(
        "retention applied",
        extra={"database": database, "deleted": len(plan.deleted), "failed": len(plan.failed)},
    )
    return result
