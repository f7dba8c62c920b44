"""Plan the verification of one of RDS's own ways back for a configured database: validate the
input, find the source instance in the deployed configuration, and resolve what would be
restored (the newest snapshot, or a point in time inside the restore window). Reads RDS, the
settings and the store; creates nothing.

Input (a schedule's payload, or the restore workflow's point-in-time request):

    {"database": "orders", "mode": "snapshot"}
    {"database": "orders", "mode": "point_in_time", "time": "2026-11-21T04:00:00Z" | "latest"}
"""

from __future__ import annotations

from typing import Any

from backproof.errors import BadInput
from backproof.instances.native import parse_time, plan_point_in_time, plan_snapshot
from backproof.jobs.native import nearest_backup

from .aws import configured_source
from .clients import rds, ssm
from .env import required, settings
from .events import field, only
from .observability import logger, tracer
from .stores import store

SETTINGS = settings()
SETTINGS_PREFIX = required("BACKPROOF_SETTINGS_PREFIX")
MODES = ("snapshot", "point_in_time")
INPUT_FIELDS = {
    "database",
    "mode",
    "time",
    "snapshot_id",
    "source_instance",
    "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID",
}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    only(event, INPUT_FIELDS, "the input")
    database = field(event, "database")
    mode = field(event, "mode")
    if mode not in MODES:
        raise BadInput(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    named = field(event, "source_instance", default=None)
    source = configured_source(ssm(), SETTINGS_PREFIX, database, named)
    if mode == "snapshot":
        way = plan_snapshot(rds(), source, field(event, "snapshot_id", default=None))
    else:
        way = plan_point_in_time(rds(), source, parse_time(field(event, "time")))
    nearest = nearest_backup(store(), database, way.at)
    logger.info("way back planned", extra={"database": database, "way_back": way.label})
    return {
        "database": database,
        "mode": mode,
        "way_back": way.to_dict(),
        "server_major": way.major,
        "compared_with": nearest.backup_id if nearest else None,
        "summary": (
            f"restore {way.label} of {database} into a temporary instance, run the checks, "
            "compare with "
            + (
                f"logical backup {nearest.backup_id}"
                if nearest
                else "no logical backup (none before)"
            )
            + ", delete it"
        ),
    }
