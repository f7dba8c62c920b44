"""The verification report: one evidence object per run, beside the backup
(`verifications/<run-id>.json`).

Every check with what was expected, what was found and the verdict; timings (restore seconds
is the measured recovery time); the instance and tool versions used; pg_restore's messages
with their classification. The readable form is the CLI's (cli/render.py).
"""

from __future__ import annotations

import json
import platform
import secrets
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import __version__
from .checks import FAIL, PASS, SKIP, WARN, CheckResult
from .recovery import RecoveryTargets
from .recovery import recovery as recovery_section

FORMAT = "backproof.verification"
FORMAT_VERSION = 1
VERIFIED, FAILED, UNVERIFIED = "verified", "failed", "unverified"
# The run could not finish for reasons outside the backup (instance never reachable, no
# space, a dropped connection, evidence that could not be written): it says nothing about
# the backup and never changes its status.
COULD_NOT_VERIFY = "could-not-verify"
CONCLUSIVE = (VERIFIED, FAILED)
# Checks whose failure does not show the backup defective: the run's environment failed.
ENVIRONMENT_CHECKS = ("instance",)
# The operator's own checks, reported apart from what the manifest implies.
OPERATOR_CHECKS = ("assertion", "freshness")


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


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: the run's start (UTC, to the millisecond) and random hex."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


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
    run_id: str = field(default_factory=new_run_id)
    # Recovery time and point objectives the run is held against (model/recovery.py).
    targets: RecoveryTargets | None = None

    @property
    def recovery(self) -> dict[str, Any]:
        """Time to a checked database and the data's age then, with verdicts on the targets."""
        return recovery_section(
            self.timings, self.snapshot_taken_at, self.finished_at, self.targets
        )

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.verdict == FAIL]

    @property
    def defects(self) -> list[CheckResult]:
        """Failures that show the backup itself defective (what its manifest implies)."""
        return [c for c in self.failures if c.check not in (*ENVIRONMENT_CHECKS, *OPERATOR_CHECKS)]

    @property
    def operator_failures(self) -> list[CheckResult]:
        return [c for c in self.failures if c.check in OPERATOR_CHECKS]

    @property
    def verdict(self) -> str:
        if self.defects:
            return FAILED
        environment = any(c.check in ENVIRONMENT_CHECKS for c in self.failures)
        if self.error is not None or not self.checks or environment:
            return COULD_NOT_VERIFY
        return FAILED if self.operator_failures else VERIFIED

    @property
    def passed(self) -> bool:
        return self.verdict == VERIFIED

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
            "run_id": self.run_id,
            "backup_id": self.backup_id,
            "database": self.database,
            "verdict": self.verdict,
            "passed": self.passed,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "snapshot_taken_at": self.snapshot_taken_at,
            "summary": self.counts(),
            "failed_checks": [_short(c) for c in self.failures],
            "manifest_failures": [_short(c) for c in self.defects],
            "operator_failures": [_short(c) for c in self.operator_failures],
            "error": self.error,
            "timings": self.timings,
            "recovery": self.recovery,
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
            "recovery": self.recovery,
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


def verdict_of(report: dict[str, Any] | None) -> str:
    """verified | failed | could-not-verify | unverified, from a stored report (reports of
    every release: `verdict`, an older `status`, or only `passed`)."""
    if not report:
        return UNVERIFIED
    verdict = str(report.get("verdict") or report.get("status") or "").lower()
    if verdict in (VERIFIED, FAILED, COULD_NOT_VERIFY):
        return verdict
    return VERIFIED if report.get("passed") is True else FAILED


def latest_conclusive(reports: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest report that says something about the backup (verified or failed)."""
    for report in reversed(reports):
        if verdict_of(report) in CONCLUSIVE:
            return report
    return None


def verification_status(report: dict[str, Any] | None) -> tuple[str, float | None]:
    """(verdict, restore seconds) from a stored verification report."""
    if not report:
        return UNVERIFIED, None
    timings = report.get("timings") or {}
    seconds = timings.get("restore_seconds")
    return verdict_of(report), (float(seconds) if seconds is not None else None)
