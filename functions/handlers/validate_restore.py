"""Validate an operator's restore request and plan it. Reads the store; touches nothing.

Input (what an operator pastes into the Step Functions console; see events/restore-*.json):

    {"database": "orders", "backup_id": "latest",
     "target": {"kind": "new_instance"} | {"kind": "existing", "database": "orders-staging",
                                           "confirm": "orders-staging"},
     "tables": ["public.orders"], "dry_run": true}
"""

from __future__ import annotations

import re
from typing import Any

from backproof.errors import BadInput
from backproof.jobs.restore import require_confirmation, select_backup

from .env import settings
from .events import field
from .observability import logger, tracer
from .stores import store

SETTINGS = settings()
REQUEST_FIELDS = {"database", "backup_id", "target", "tables", "dry_run"}
TARGET_FIELDS = {
    "new_instance": {"kind", "instance_class", "dbname"},
    "existing": {"kind", "database", "confirm"},
}
INSTANCE_CLASS = re.compile(r"^db\.[a-z0-9]+\.[a-z0-9]+$")


def _only(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise BadInput(
            f"{where} has an unknown field '{unknown[0]}'; allowed: {', '.join(sorted(allowed))}"
        )


def _target(raw: dict[str, Any], source_dbname: str) -> dict[str, Any]:
    kind = field(raw, "kind")
    if kind not in TARGET_FIELDS:
        raise BadInput(f"target.kind must be 'new_instance' or 'existing', got {kind!r}")
    _only(raw, TARGET_FIELDS[kind], "target")
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
    database = field(raw, "database")
    confirm = field(raw, "confirm", default=None)
    require_confirmation(database, confirm, field_hint="set target.confirm to '{name}' to confirm")
    return {"kind": kind, "database": database, "confirm": confirm}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = field(event, "request", dict)
    _only(request, REQUEST_FIELDS, "request")
    database = field(request, "database")
    tables = field(request, "tables", list, default=[])
    if not all(isinstance(t, str) and t for t in tables):
        raise BadInput("request.tables must be a list of [schema.]table names")
    dry_run = field(request, "dry_run", bool, default=False)
    # The handler cannot read the archive's TOC, so every table must be in the manifest.
    chosen = select_backup(
        store(),
        field(request, "backup_id", default="latest"),
        database,
        tables,
        archive_names=False,
    )
    stored, manifest = chosen.stored, chosen.manifest
    target = _target(field(request, "target", dict), manifest.source_database)
    selected = chosen.names
    where = (
        f"a new RDS instance (PostgreSQL {manifest.server_major}), kept afterwards"
        if target["kind"] == "new_instance"
        else f"the existing database {target['database']!r}, after a safety backup of it"
    )
    plan = {
        "database": database,
        "backup": {
            "backup_id": stored.backup_id,
            "server_major": manifest.server_major,
            "size": manifest.archive.size,
            "tier": manifest.tier,
            "snapshot_taken_at": str(manifest.snapshot.get("taken_at")),
        },
        "target": target,
        "tables": selected,
        "dry_run": dry_run,
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
