"""The verification report: `verification.json` beside the backup.

Every check with what was expected, what was found and the verdict; timings (restore seconds
is the measured recovery time); the instance and tool versions used; pg_restore's messages
with their classification. The readable form is the CLI's (cli/render.py).
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import __version__
from .checks import FAIL, PASS, SKIP, WARN, CheckResult

FORMAT = "backproof.verification"
FORMAT_VERSION = 1
VERIFIED, FAILED, UNVERIFIED = "verified", "failed", "unverified"


@dataclass(frozen=True)
class RestoreMessage:
    """One message from pg_restore with its context lines and verdict."""

    text: str
    severity: str  # error | warning | info
    fatal: bool
    reason: str
    toc_entry: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
            "restore_messages": [
                m.to_dict() for m in self.restore_messages if m.severity != "info"
            ],
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, default=str).encode()

    def summary(self) -> dict[str, Any]:
        """The one-line JSON the CLI prints with --json."""
        return {
            "backup_id": self.backup_id,
            "database": self.database,
            "verdict": self.verdict,
            "failed_checks": [_short(c) for c in self.failures],
            "error": self.error,
            "summary": self.counts(),
            "timings": self.timings,
            "instance": self.instance.get("kind"),
            "report_key": self.report_key,
        }


def _short(c: CheckResult) -> dict[str, Any]:
    return {
        "check": c.check,
        "subject": c.subject,
        "expected": c.expected,
        "found": c.found,
        "detail": c.detail,
    }


def verification_status(report: dict[str, Any] | None) -> tuple[str, float | None]:
    """(verified | failed | unverified, restore seconds) from a stored verification report."""
    if not report:
        return UNVERIFIED, None
    verdict = str(report.get("verdict") or report.get("status") or "").lower()
    if verdict not in (VERIFIED, FAILED):
        verdict = VERIFIED if report.get("passed") is True else FAILED
    timings = report.get("timings") or {}
    seconds = timings.get("restore_seconds")
    return verdict, (float(seconds) if seconds is not None else None)
