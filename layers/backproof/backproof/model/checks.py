"""One check's result: what the manifest (or the operator) expected, what the restore held."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"


@dataclass
class CheckResult:
    """One comparison: what the manifest (or the operator) expected, what the restore held."""

    check: str  # e.g. "row_count", "fingerprint", "assertion", "integrity.sha256"
    subject: str  # what was checked: a table, an object kind, an assertion's name
    expected: Any
    found: Any
    verdict: str  # pass | fail | warn | skip
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(
            str(data["check"]),
            str(data["subject"]),
            data.get("expected"),
            data.get("found"),
            str(data["verdict"]),
            str(data.get("detail", "")),
        )


def compare(check: str, subject: str, expected: Any, found: Any, detail: str = "") -> CheckResult:
    return CheckResult(check, subject, expected, found, PASS if expected == found else FAIL, detail)


def failures(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.failed]
