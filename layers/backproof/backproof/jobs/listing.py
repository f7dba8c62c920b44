"""Rows for `backproof list`: one per backup, with its verification status."""

from __future__ import annotations

from typing import Any

from ..model.report import verdict_of, verification_status
from ..store import BACKUPS, BackupStore, StoredBackup


def list_backups(
    store: BackupStore,
    database: str | None = None,
    *,
    include_incomplete: bool = False,
    namespace: str = BACKUPS,
) -> list[dict[str, Any]]:
    """Rows for `backproof list`: a database's backups, or (SAFETY) the safety backups of
    restore targets, filed by target."""
    backups = store.list_backups(
        database, include_incomplete=include_incomplete, namespace=namespace
    )
    return backup_rows(backups)


def backup_rows(backups: list[StoredBackup]) -> list[dict[str, Any]]:
    rows = []
    for b in backups:
        m = b.manifest
        status, restore_seconds = verification_status(b.verification)
        if not b.complete:
            status = "incomplete"
        elif m is None:
            status = "unreadable-manifest"
        rows.append(
            {
                "backup_id": b.backup_id,
                "time": (m.created_at if m else b.created_at.isoformat()),
                "database": b.database,
                "tier": m.tier if m else None,
                "size": m.archive.total_size if m else b.archive_size,
                "tables": len(m.inventory.tables) if m else None,
                "rows": m.inventory.total_rows if m else None,
                "verification": status,
                "restore_seconds": restore_seconds,
                # every run, could-not-verify included (the status counts only conclusive ones)
                "verification_runs": len(b.verifications),
                "last_run": verdict_of(b.last_run),
                "complete": b.complete,
                "prefix": b.prefix,
            }
        )
    return rows
