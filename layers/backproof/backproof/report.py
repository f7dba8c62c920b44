"""The verification report: `verification.json` beside the backup, and its readable form.

Every check with what was expected, what was found and the verdict; timings (restore seconds
is the measured recovery time); the instance and tool versions used; pg_restore's messages
with their classification.
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import __version__
from .checks import FAIL, PASS, SKIP, WARN, CheckResult
from .restore import RestoreMessage

FORMAT = "backproof.verification"
FORMAT_VERSION = 1
VERIFIED, FAILED = "verified", "failed"


@dataclass
class VerificationReport:
    backup_id: str
    database: str
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    finished_at: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    instance: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, Any] = field(default_factory=dict)
    restore_messages: list[RestoreMessage] = field(default_factory=list)
    snapshot_taken_at: str | None = None
    operator_checks: int = 0
    error: str | None = None
    report_key: str | None = None
    kind: str = "verification"  # or "restore" for an operator restore

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.verdict == FAIL]

    @property
    def passed(self) -> bool:
        return not self.failures and self.error is None and bool(self.checks)

    @property
    def verdict(self) -> str:
        return VERIFIED if self.passed else FAILED

    def add(self, *results: CheckResult) -> None:
        self.checks.extend(results)

    def finish(self) -> VerificationReport:
        self.finished_at = datetime.now(UTC).isoformat()
        return self

    def counts(self) -> dict[str, int]:
        counter = Counter(c.verdict for c in self.checks)
        return {v: counter.get(v, 0) for v in (PASS, FAIL, WARN, SKIP)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "backup_id": self.backup_id,
            "database": self.database,
            "verdict": self.verdict,
            "passed": self.passed,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "snapshot_taken_at": self.snapshot_taken_at,
            "summary": self.counts(),
            "failed_checks": [_short(c) for c in self.failures],
            "error": self.error,
            "timings": self.timings,
            "instance": self.instance,
            "tools": {**self.tools, "backproof": __version__, "python": platform.python_version()},
            "restore_messages": [m.to_dict() for m in self.restore_messages
                                 if m.severity != "info"],
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, default=str).encode()

    def summary(self) -> dict[str, Any]:
        """The one-line JSON the CLI prints with --json."""
        return {
            "backup_id": self.backup_id, "database": self.database, "verdict": self.verdict,
            "failed_checks": [_short(c) for c in self.failures], "error": self.error,
            "summary": self.counts(), "timings": self.timings,
            "instance": self.instance.get("kind"), "report_key": self.report_key,
        }


def _short(c: CheckResult) -> dict[str, Any]:
    return {"check": c.check, "subject": c.subject, "expected": c.expected, "found": c.found,
            "detail": c.detail}


def write_report(store: Any, stored: Any, report: VerificationReport) -> str:
    """Write verification.json beside the backup; returns its key."""
    report.report_key = store.write_verification(stored, report.to_dict())
    return str(report.report_key)


# -- readable form ----------------------------------------------------------------------------
_CHECK_TITLES = {
    "integrity.manifest": "manifest well-formed",
    "integrity.size": "archive size",
    "integrity.sha256": "archive SHA-256",
    "integrity.encryption": "archive encryption",
    "integrity.decompress": "archive decompresses",
    "integrity.raw_size": "archive raw size",
    "restore": "pg_restore messages",
    "table_present": "tables present",
    "row_count": "exact row counts",
    "fingerprint": "content fingerprints",
    "object_count": "schema object counts",
    "sequence": "sequences at/after recorded value",
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
    table = Table(title=f"{report.kind} of backup {report.backup_id} ({report.database})",
                  show_lines=False, expand=False)
    for col in ("check", "checked", "pass", "warn", "fail"):
        table.add_column(col, justify="left" if col == "check" else "right")
    for name, results in groups.items():
        counts = Counter(r.verdict for r in results)
        table.add_row(
            _CHECK_TITLES.get(name, name), str(len(results)),
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
        detail.add_row(Text(c.verdict, style=_STYLE[c.verdict]), c.check, _fmt(c.subject, 40),
                       _fmt(c.expected), _fmt(c.found), _fmt(c.detail, 60))
    console.print(detail)
    if len(notable) > limit:
        console.print(f"… and {len(notable) - limit} more in the JSON report")


def _render_footer(report: VerificationReport, console: Console) -> None:
    if report.error:
        console.print(Text(f"error: {report.error}", style="bold red"))
    if report.timings:
        steps = "  ".join(f"{k.removesuffix('_seconds')} {v:.1f}s"
                          for k, v in report.timings.items())
        console.print(f"timings: {steps}")
    inst = report.instance
    if inst.get("target"):
        console.print(f"target: {inst['target']}")
    elif inst:
        console.print(f"instance: {inst.get('kind')} PostgreSQL {inst.get('server_version')}"
                      + (f" ({inst['identifier']})" if inst.get("identifier") else ""))
    if report.report_key:
        console.print(f"evidence: {report.report_key}")
    style = "bold green" if report.passed else "bold red"
    if report.kind == "restore":
        word = "RESTORED, checks agree" if report.passed else "RESTORED, CHECKS FAILED"
    else:
        word = "VERIFIED" if report.passed else "FAILED"
    console.print(Text(f"{word}: {report.counts()[PASS]} checks passed, "
                       f"{len(report.failures)} failed", style=style))
