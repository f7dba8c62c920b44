"""The restore workflow's other requests, validated like a restore (store and settings read,
nothing touched): a point-in-time restore of the database's RDS instance, verified in a
temporary instance (the native verification workflow), and the rollback of an earlier restore.

    {"database": "orders", "target": {"kind": "point_in_time", "time": "2026-11-21T04:00:00Z"
     | "latest", "source_instance": "orders-prod"}, "dry_run": false}
    {"rollback": "<restore id>", "target": {"kind": "existing", "database": "orders-staging",
     "confirm": "orders-staging"}, "dry_run": false}
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from backproof.errors import BadInput
from backproof.instances.native import parse_time
from backproof.model.manifest import Manifest
from backproof.store import SAFETY, BackupStore, StoredBackup
from backproof.store.records import read_restore_record

from .aws import configured_source
from .events import field, only

POINT_IN_TIME_FIELDS = {"kind", "time", "source_instance"}
ROLLBACK_FIELDS = {"rollback", "database", "target", "dry_run"}
TargetFn = Callable[[dict[str, Any], str, str], dict[str, Any]]


def planned_backup(stored: StoredBackup, manifest: Manifest) -> dict[str, Any]:
    """What a restore plan says of the backup it restores."""
    return {
        "backup_id": stored.backup_id,
        "server_major": manifest.server_major,
        "size": manifest.archive.total_size,
        "tier": manifest.tier,
        "snapshot_taken_at": str(manifest.snapshot.get("taken_at")),
    }


def point_in_time_plan(request: dict[str, Any], ssm: Any, prefix: str) -> dict[str, Any]:
    raw = field(request, "target", dict)
    only(raw, POINT_IN_TIME_FIELDS, "target")
    if request.get("backup_id") or request.get("tables"):
        raise BadInput("a point-in-time restore restores the instance: give no backup_id or tables")
    database = field(request, "database")
    text = field(raw, "time")
    at = parse_time(text)
    if at is not None and at > datetime.now(UTC):
        raise BadInput(f"target.time {text!r} is in the future")
    source = configured_source(ssm, prefix, database, field(raw, "source_instance", default=None))
    when = "its latest restorable time" if at is None else at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "database": database,
        "target": {
            "kind": "point_in_time",
            "time": "latest" if at is None else when,
            "source_instance": source,
        },
        "tables": [],
        "dry_run": field(request, "dry_run", bool, default=True),
        "rollback": None,
        "instance_class": None,
        "summary": (
            f"restore RDS instance {source} ({database}) to {when} into a temporary instance, "
            "run the checks, compare with the nearest logical backup, delete it"
        ),
    }


def rollback_plan(request: dict[str, Any], store: BackupStore, target: TargetFn) -> dict[str, Any]:
    only(request, ROLLBACK_FIELDS, "request")
    restore_id = field(request, "rollback")
    rolled = read_restore_record(store, restore_id)
    database = field(request, "database", default=rolled.get("database"))
    if database != rolled.get("database"):
        raise BadInput(
            f"restore {restore_id} restored {rolled.get('database')!r}, not {database!r}"
        )
    safety = rolled.get("safety_backup")
    if not isinstance(safety, dict) or not safety.get("backup_id"):
        raise BadInput(
            f"restore {restore_id} took no safety backup (its target was empty or a new "
            "instance): there is no earlier state to put back"
        )
    chosen = target(field(request, "target", dict), "", database)
    if chosen["kind"] != "existing":
        raise BadInput("a rollback goes into the existing database its restore replaced")
    stored = store.find(str(safety["backup_id"]), str(safety.get("target")), namespace=SAFETY)
    manifest = store.load_manifest(stored)
    return {
        "database": database,
        "backup": planned_backup(stored, manifest),
        "target": chosen,
        "tables": [],
        "dry_run": field(request, "dry_run", bool, default=True),
        "rollback": restore_id,
        "instance_class": None,
        "summary": (
            f"roll back restore {restore_id}: take a safety backup of {chosen['database']!r} as "
            f"it is now, empty it, and restore safety backup {stored.backup_id} (what it held "
            "before that restore)"
        ),
    }
