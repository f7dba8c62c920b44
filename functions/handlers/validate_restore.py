"""Validate an operator's restore request and plan it. Reads the store; touches nothing.

Input (what an operator pastes into the Step Functions console; see events/restore-*.json):

    {"database": "orders", "backup_id": "latest",
     "target": {"kind": "new_instance"} | {"kind": "existing", "database": "orders-staging",
                                           "confirm": "orders-staging"},
     "tables": ["public.orders"], "dry_run": false}

A point-in-time request (`"target": {"kind": "point_in_time", ...}`) and the rollback of an
earlier restore (`{"rollback": "<restore id>", "target": {...}}`) are planned by
restore_ways.py.

An existing target must be one of the database's declared `restore_targets` (each with its own
secret; the backup secret is never used to restore). `dry_run` is true unless the input says
`"dry_run": false`.
"""

from __future__ import annotations

import re
from typing import Any

from backproof.errors import BadInput
from backproof.jobs.restore import require_confirmation, select_backup

from .aws import database_settings
from .clients import ssm
from .env import required, settings
from .events import field, only
from .observability import logger, tracer
from .restore_ways import planned_backup, point_in_time_plan, rollback_plan
from .stores import store

SETTINGS = settings()
SETTINGS_PREFIX = required("BACKPROOF_SETTINGS_PREFIX")
REQUEST_FIELDS = {"database", "backup_id", "target", "tables", "dry_run", "rollback"}
TARGET_FIELDS = {
    "new_instance": {"kind", "instance_class", "dbname"},
    "existing": {"kind", "database", "confirm"},
}
INSTANCE_CLASS = re.compile(r"^db\.[a-z0-9]+\.[a-z0-9]+$")


def _declared(database: str, name: str) -> dict[str, Any]:
    """The restore target `name` declared for `database` in the deployed configuration."""
    config = database_settings(ssm(), SETTINGS_PREFIX, database)
    if config is None:
        raise BadInput(f"database {database!r} is not configured in this deployment")
    targets = {t["name"]: t for t in config.get("restore_targets") or []}
    if name not in targets:
        declared = ", ".join(sorted(targets)) or "none"
        raise BadInput(
            f"{name!r} is not a declared restore target of {database!r} (declared: {declared}); "
            "add it to the database's restore_targets in the configuration and deploy"
        )
    return targets[name]


def _target(raw: dict[str, Any], source_dbname: str, database: str) -> dict[str, Any]:
    kind = field(raw, "kind")
    if kind not in TARGET_FIELDS:
        raise BadInput(
            f"target.kind must be 'new_instance', 'existing' or 'point_in_time', got {kind!r}"
        )
    only(raw, TARGET_FIELDS[kind], "target")
    if kind == "new_instance":
        instance_class = field(raw, "instance_class", default=None)
        if instance_class is not None and not INSTANCE_CLASS.match(instance_class):
            raise BadInput(
                f"target.instance_class {instance_class!r} is not an RDS class like db.r6g.large"
            )
        return {
            "kind": kind,
            "instance_class": instance_class,
            "dbname": field(raw, "dbname", default=source_dbname),
        }
    name = field(raw, "database")
    declared = _declared(database, name)
    confirm = field(raw, "confirm", default=None)
    require_confirmation(name, confirm, field_hint="set target.confirm to '{name}' to confirm")
    return {
        "kind": kind,
        "database": name,
        "confirm": confirm,
        "secret_arn": declared["secret_arn"],
        "sslmode": declared.get("sslmode", "verify-full"),
        "overwrites_source": bool(declared.get("allow_restore_over_source")),
    }


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = field(event, "request", dict)
    only(request, REQUEST_FIELDS, "request")
    if "rollback" in request:  # the rollback of an earlier restore (restore_ways.py)
        return rollback_plan(request, store(), _target)
    if isinstance(request.get("target"), dict) and request["target"].get("kind") == "point_in_time":
        return point_in_time_plan(request, ssm(), SETTINGS_PREFIX)
    database = field(request, "database")
    tables = field(request, "tables", list, default=[])
    if not all(isinstance(t, str) and t for t in tables):
        raise BadInput("request.tables must be a list of [schema.]table names")
    # Only an explicit `"dry_run": false` touches anything.
    dry_run = field(request, "dry_run", bool, default=True)
    # The handler cannot read the archive's TOC, so every table must be in the manifest.
    chosen = select_backup(
        store(),
        field(request, "backup_id", default="latest"),
        database,
        tables,
        archive_names=False,
    )
    stored, manifest = chosen.stored, chosen.manifest
    target = _target(field(request, "target", dict), manifest.source_database, database)
    selected = chosen.names
    where = (
        f"a new RDS instance (PostgreSQL {manifest.server_major}), kept afterwards"
        if target["kind"] == "new_instance"
        else f"the existing database {target['database']!r}, after a safety backup of it"
    )
    plan = {
        "database": database,
        "backup": planned_backup(stored, manifest),
        "target": target,
        "tables": selected,
        "dry_run": dry_run,
        "rollback": None,
        "instance_class": target.get("instance_class"),
        "summary": (
            f"restore {'tables ' + ', '.join(selected) if selected else 'everything'} from "
            f"backup {stored.backup_id} of {database} into {where}"
        ),
    }
    logger.info(
        "restore planned",
        extra={
            "database": database,
            "backup_id": stored.backup_id,
            "target_kind": target["kind"],
            "dry_run": dry_run,
        },
    )
    return plan
