"""Rows for `backproof list`: one per backup, with its verification status."""

from __future__ import annotations

from typing import Any

from .store import StoredBackup


def verification_status(report: dict[str, Any] | None) -> tuple[str, float | None]:
    """(verified | failed | unverified, restore seconds) from a verification report."""
    if not report:
        return "unverified", None
    verdict = str(report.get("verdict") or report.get("status") or "").lower()
    if verdict not in ("verified", "failed"):
        verdict = "verified" if report.get("passed") is True else "failed"
    timings = report.get("timings") or {}
    seconds = timings.get("restore_seconds")
    return verdict, (float(seconds) if seconds is not None else None)


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
                "size": m.archive.size if m else b.archive_size,
                "tables": len(m.inventory.tables) if m else None,
                "rows": m.inventory.total_rows if m else None,
                "verification": status,
                "restore_seconds": restore_seconds,
                "complete": b.complete,
                "prefix": b.prefix,
            }
        )
    return rows


def _human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def render_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no backups"
    headers = [
        "BACKUP ID",
        "TIME (UTC)",
        "DATABASE",
        "TIER",
        "SIZE",
        "TABLES",
        "ROWS",
        "VERIFICATION",
        "RESTORE S",
    ]
    body = [
        [
            r["backup_id"],
            str(r["time"])[:19].replace("T", " "),
            r["database"],
            r["tier"] or "-",
            _human_size(r["size"]),
            "-" if r["tables"] is None else str(r["tables"]),
            "-" if r["rows"] is None else str(r["rows"]),
            r["verification"],
            "-" if r["restore_seconds"] is None else f"{r['restore_seconds']:.1f}",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(line.rstrip() for line in lines)
