"""Every 15 minutes: per configured database, the seconds since its newest verified backup,
read from the store itself, as the metric the NoVerifiedBackup alarms watch.

The alarm treats missing data as breaching, so whatever stops this number from arriving (a
deleted schedule, a broken function, a region outage) pages someone just as a stale backup
does. A database never verified reports NEVER_VERIFIED_SECONDS, far above any threshold. A
database whose backups cannot be read publishes nothing (the alarm fires) and the run fails.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from backproof.contract import METRIC_SECONDS_SINCE_VERIFIED, NEVER_VERIFIED_SECONDS
from backproof.errors import BackproofError
from backproof.jobs.instance import current_members
from backproof.jobs.status import database_status

from .env import Instance, databases, instances, settings
from .member_alarms import MemberAlarms
from .observability import logger, metrics, tracer
from .stores import store

SETTINGS = settings()
DATABASES = databases()
# Instances (`databases: "*"`): their window and alarm threshold; their databases' alarms.
INSTANCES = instances()
MEMBER_ALARMS = MemberAlarms.from_environ()
__all__ = ["Instance", "MemberAlarms", "handler"]


class FreshnessUnknown(RuntimeError):
    """The store could not be read for some databases; their metric was left out."""


def seconds_since_verified(database: str, now: datetime) -> float:
    status = database_status(database, store().list_backups(database), now=now)
    age = status.verified_age_seconds
    return float(NEVER_VERIFIED_SECONDS) if age is None else age


def instance_ages(name: str, now: datetime) -> dict[str, float]:
    """Each current database of an instance, and the instance itself as its stalest one (what
    its alarm watches; never verified when none has been backed up yet)."""
    watch = INSTANCES[name]
    members = current_members(store(), name, timedelta(hours=watch.window_hours))
    if MEMBER_ALARMS is not None:
        changed = MEMBER_ALARMS.sync(name, members, watch.threshold_s)
        if changed["created"] or changed["removed"]:
            logger.info(
                "instance alarms kept in step",
                extra={
                    "instance": name,
                    "alarms_created": changed["created"],
                    "alarms_removed": changed["removed"],
                },
            )
    ages = {member: seconds_since_verified(member, now) for member in members}
    ages[name] = max(ages.values(), default=float(NEVER_VERIFIED_SECONDS))
    return ages


def publish(database: str, seconds: float) -> None:
    """One EMF document per database: dimensions service and database, as the alarm reads."""
    with single_metric(
        name=METRIC_SECONDS_SINCE_VERIFIED,
        unit=MetricUnit.Seconds,
        value=seconds,
        namespace=metrics.namespace,
        default_dimensions={**metrics.default_dimensions, "database": database},
    ):
        pass


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    ages: dict[str, float] = {}
    unreadable: dict[str, str] = {}
    for database in DATABASES:
        try:
            found = (
                instance_ages(database, now)
                if database in INSTANCES
                else {database: seconds_since_verified(database, now)}
            )
        except BackproofError as exc:  # the store said no: leave the metric missing (alarms)
            unreadable[database] = str(exc)
            continue
        for name, seconds in found.items():
            ages[name] = seconds
            publish(name, seconds)
    stale = {d: s for d, s in ages.items() if s >= NEVER_VERIFIED_SECONDS}
    logger.info(
        "freshness published", extra={"seconds_since_verified": ages, "never_verified": stale}
    )
    if unreadable:
        logger.error("store unreadable for some databases", extra={"errors": unreadable})
        raise FreshnessUnknown(
            f"could not read the backups of {', '.join(sorted(unreadable))}: "
            + "; ".join(unreadable.values())
        )
    return {"seconds_since_verified": ages, "checked_at": now.isoformat()}
