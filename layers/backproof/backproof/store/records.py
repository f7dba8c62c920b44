"""Records beside the backups that are not backups: what each operator restore did (so it can
be rolled back), and the evidence of verifications of RDS's own ways back.

    restores/<yyyy>/<mm>/<dd>/<restore-id>.json                one per operator restore or rollback
    snapshots/<database>/<yyyy>/<mm>/<dd>/<run-id>.json        a verified (or not) RDS snapshot
    point-in-time/<database>/<yyyy>/<mm>/<dd>/<run-id>.json    a verified point-in-time restore

A restore's id is its report's run id, so its record is found from the id alone. The catalog
(backups/, safety/) never lists these: a snapshot's verification never makes a logical backup
verified, never counts for freshness, and retention never deletes a record.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from ..errors import BackupNotFound, BadInput, IntegrityError
from ..model.manifest import backup_id_time, is_backup_id
from .layout import validate_database_name

RESTORES = "restores"
SNAPSHOTS, POINT_IN_TIME = "snapshots", "point-in-time"
WAY_BACK_NAMESPACES = {"snapshot": SNAPSHOTS, "point-in-time": POINT_IN_TIME}
RECORD_FORMAT = "backproof.restore"


class RecordStore(Protocol):
    prefix: str

    def put_bytes(
        self, key: str, data: bytes, content_type: str = ..., *, tier: str | None = None
    ) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...


def _dated(run_id: str) -> str:
    if not is_backup_id(run_id):
        raise BadInput(
            f"{run_id!r} is not a restore id (they look like 20261121T050312.123Z-1a2b3c; the "
            "restore printed it as restore_id)"
        )
    return f"{backup_id_time(run_id):%Y/%m/%d}/{run_id}.json"


def restore_record_key(prefix: str, restore_id: str) -> str:
    return f"{prefix}{RESTORES}/{_dated(restore_id)}"


def way_back_key(prefix: str, kind: str, database: str, run_id: str) -> str:
    if kind not in WAY_BACK_NAMESPACES:
        raise BadInput(f"no evidence namespace for {kind!r}")
    namespace = WAY_BACK_NAMESPACES[kind]
    return f"{prefix}{namespace}/{validate_database_name(database)}/{_dated(run_id)}"


def _put(store: RecordStore, key: str, data: dict[str, Any]) -> str:
    store.put_bytes(key, json.dumps(data, indent=2, default=str).encode())
    return key


def write_restore_record(store: RecordStore, record: dict[str, Any]) -> str:
    """Write (or rewrite, as the restore goes on) one restore's record; its key."""
    key = restore_record_key(store.prefix, str(record["restore_id"]))
    return _put(store, key, {"format": RECORD_FORMAT, "format_version": 1, **record})


def read_restore_record(store: RecordStore, restore_id: str) -> dict[str, Any]:
    key = restore_record_key(store.prefix, restore_id)
    try:
        data = json.loads(store.get_bytes(key))
    except IntegrityError as exc:  # the store's word for a missing object
        raise BackupNotFound(f"no restore {restore_id} in this store (no {key})") from exc
    except ValueError as exc:
        raise BadInput(f"the record of restore {restore_id} ({key}) is not JSON") from exc
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise BadInput(f"{key} is not a restore record")
    return data


def write_way_back_evidence(
    store: RecordStore, kind: str, database: str, report: dict[str, Any]
) -> str:
    """A way-back verification's evidence, never over another run's; its key."""
    return _put(store, way_back_key(store.prefix, kind, database, str(report["run_id"])), report)
