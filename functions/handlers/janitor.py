"""Hourly sweep: delete temporary instances past their expiry, free slots and locks of
executions that ended without releasing them. (The age of each database's newest verified
backup is published by the freshness function, every 15 minutes.)"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit

from backproof.contract import (
    METRIC_INSTANCES_NOT_DELETED,
    METRIC_LEAKED_INSTANCES,
    METRIC_STALE_SLOTS,
)
from backproof.instances.janitor import delete_expired

from .aws import release_stale_locks, release_stale_slots
from .env import JanitorSettings, settings
from .observability import logger, metrics, tracer

SETTINGS = settings()
JANITOR = JanitorSettings.from_environ()


@cache
def clients() -> dict[str, Any]:
    return {name: boto3.client(name) for name in ("rds", "dynamodb", "stepfunctions")}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    aws = clients()
    sweep = delete_expired(aws["rds"], SETTINGS.deployment, now=now)
    deleted = sweep.deleted
    freed = release_stale_slots(
        aws["dynamodb"], aws["stepfunctions"], JANITOR.slots_table, JANITOR.slots_key
    )
    unlocked = release_stale_locks(aws["dynamodb"], aws["stepfunctions"], JANITOR.slots_table)
    metrics.add_metric(name=METRIC_LEAKED_INSTANCES, unit=MetricUnit.Count, value=len(deleted))
    metrics.add_metric(
        name=METRIC_INSTANCES_NOT_DELETED, unit=MetricUnit.Count, value=len(sweep.skipped)
    )
    metrics.add_metric(name=METRIC_STALE_SLOTS, unit=MetricUnit.Count, value=len(freed))
    if deleted:
        logger.warning("deleted expired temporary instances", extra={"instances": deleted})
    if sweep.skipped:
        logger.error("expired temporary instances not deleted", extra={"skipped": sweep.skipped})
    return {
        "deleted": deleted,
        "deleted_count": len(deleted),
        "skipped": sweep.skipped,
        "released_slots": freed,
        "released_locks": unlocked,
    }
