"""Readable forms: the verification report, the backup list, a restore plan."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..model.checks import FAIL, PASS, SKIP, WARN, CheckResult
from ..model.report import VerificationReport

_CHECK_TITLES = {
    "integrity.signature": "manifest signature",
    "integrity.manifest": "manifest well-formed",
    "integrity.size": "archive size",
    "integrity.sha256": "archive SHA-256",
    "integrity.encryption": "archive encryption",
    "integrity.decompress": "archive decompresses",
    "integrity.raw_size": "archive raw size",
    "integrity.roles": "roles object SHA-256",
    "roles": "roles created before the restore",
    "owner": "object owners",
    "privileges": "grants, column grants, RLS policies",
    "restore": "pg_restore messages",
    "table_present": "tables present",
    "row_count": "exact row counts",
    "fingerprint": "content fingerprints",
    "object_count": "schema object counts",
    "sequence": "sequences at/after recorded value",
    "sequence_owner": "sequences owned by the same column",
    "sequence_ahead_of_column": "sequences ahead of their column's rows",
    "large_objects": "large objects",
    "extension": "extensions",
    "indexes_valid": "indexes valid",
    "constraints_validated": "constraints validated",
    "assertion": "operator assertions",
    "freshness": "freshness",
    "instance": "restore instance",
}
_STYLE = {PASS: "green", FAIL: "bold red", WARN: "yellow", SKIP: "dim"}


def _fmt(value: Any, width: int = 48) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def render_report(report: VerificationReport, console: Console) -> None:
    """Print what was checked, what it found, how long each step took, where the evidence is."""
    _render_summary(report, console)
    _render_differences(report, console)
    _render_footer(report, console)


def _render_summary(report: VerificationReport, console: Console) -> None:
    groups: dict[str, list[CheckResult]] = {}
    for c in report.checks:
        groups.setdefault(c.check, []).append(c)
    table = Table(
        title=f"{report.kind} of backup {report.backup_id} ({report.database})",
        show_lines=False,
        expand=False,
    )
    for col in ("check", "checked", "pass", "warn", "fail"):
        table.add_column(col, justify="left" if col == "check" else "right")
    for name, results in groups.items():
        counts = Counter(r.verdict for r in results)
        table.add_row(
            _CHECK_TITLES.get(name, name),
            str(len(results)),
            Text(str(counts[PASS]), style="green"),
            Text(str(counts[WARN]), style="yellow" if counts[WARN] else "dim"),
            Text(str(counts[FAIL]), style="bold red" if counts[FAIL] else "dim"),
        )
    console.print(table)


def _render_differences(report: VerificationReport, console: Console, limit: int = 40) -> None:
    notable = [c for c in report.checks if c.verdict in (FAIL, WARN)]
    if not notable:
        return
    detail = Table(title="differences", show_lines=False)
    for col in ("verdict", "check", "subject", "expected", "found", "detail"):
        detail.add_column(col)
    for c in notable[:limit]:
        detail.add_row(
            Text(c.verdict, style=_STYLE[c.verdict]),
            c.check,
            _fmt(c.subject, 40),
            _fmt(c.expected),
            _fmt(c.found),
            _fmt(c.detail, 60),
        )
    console.print(detail)
    if len(notable) > limit:
        console.print(f"… and {len(notable) - limit} more in the JSON report")


def _render_recovery(rec: dict[str, Any], console: Console) -> None:
    """Time to a checked database and the data's age then, each against its target."""
    if rec.get("recovery_seconds") is None:
        return
    parts = []
    for label, key, target, verdict in (
        ("RTO", "recovery_seconds", "rto_target_seconds", "rto"),
        ("RPO", "recovery_point_age_seconds", "rpo_target_seconds", "rpo"),
    ):
        if rec.get(key) is None:
            continue
        text = f"{label} {rec[key] / 60:.1f} min"
        if rec.get(target) is not None:
            text += f" (target {rec[target] / 60:g} min: {rec[verdict]})"
        parts.append(text)
    console.print("recovery: " + "  ".join(parts))


def _render_footer(report: VerificationReport, console: Console) -> None:
    if report.error:
        console.print(Text(f"error: {report.error}", style="bold red"))
    if report.timings:
        steps = "  ".join(
            f"{k.removesuffix('_seconds')} {v:.1f}s" for k, v in report.timings.items()
        )
        console.print(f"timings: {steps}")
    _render_recovery(report.recovery, console)
    inst = report.instance
    if inst.get("target"):
        console.print(f"target: {inst['target']}")
    elif inst:
        console.print(
            f"instance: {inst.get('kind')} PostgreSQL {inst.get('server_version')}"
            + (f" ({inst['identifier']})" if inst.get("identifier") else "")
            + (f", restored as {inst['restore_as']}" if inst.get("restore_as") else "")
        )
    if report.report_key:
        console.print(f"evidence: {report.report_key}")
    style = "bold green" if report.passed else "bold red"
    if report.kind == "restore":
        word = "RESTORED, checks agree" if report.passed else "RESTORED, CHECKS FAILED"
    elif report.kind == "rollback":
        word = "ROLLED BACK, checks agree" if report.passed else "ROLLED BACK, CHECKS FAILED"
    else:
        word = "VERIFIED" if report.passed else "FAILED"
    console.print(
        Text(
            f"{word}: {report.counts()[PASS]} checks passed, {len(report.failures)} failed",
            style=style,
        )
    )


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
