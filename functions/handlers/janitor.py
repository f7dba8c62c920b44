"""Hourly sweep: delete temporary instances past their expiry, free slots of executions that
ended without releasing them, and report each database's newest verified backup age."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from backproof.contract import (
    METRIC_INSTANCES_NOT_DELETED,
    METRIC_LEAKED_INSTANCES,
    METRIC_STALE_SLOTS,
    METRIC_VERIFIED_AGE_HOURS,
)
from backproof.instances.janitor import delete_expired
from backproof.model.report import VERIFIED, verification_status

from .aws import release_stale_locks, release_stale_slots
from .env import JanitorSettings, settings
from .observability import logger, metrics, tracer
from .stores import store

SETTINGS = settings()
JANITOR = JanitorSettings.from_environ()
# Reported when a database has no verified backup at all, so the alarm fires.
NEVER_VERIFIED_HOURS = 100_000.0


@cache
def clients() -> dict[str, Any]:
    return {name: boto3.client(name) for name in ("rds", "dynamodb", "stepfunctions")}


def verified_age_hours(database: str, now: datetime) -> float:
    """Hours since the newest backup of `database` whose verification passed."""
    for backup in reversed(store().list_backups(database)):
        if verification_status(backup.verification)[0] == VERIFIED:
            return round((now - backup.created_at).total_seconds() / 3600, 2)
    return NEVER_VERIFIED_HOURS


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
    ages = {}
    for database in JANITOR.databases:
        ages[database] = verified_age_hours(database, now)
        with single_metric(
            name=METRIC_VERIFIED_AGE_HOURS,
            unit=MetricUnit.Count,
            value=ages[database],
            default_dimensions={**metrics.default_dimensions, "database": database},
        ) as metric:
            metric.add_dimension(name="database", value=database)
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
        "verified_age_hours": ages,
    }
