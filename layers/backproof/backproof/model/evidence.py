"""An evidence bundle's pure parts: what each kind of check proves, the summary of a
backup's verification runs by kind, and how a stored object's exact bytes travel in JSON.
Building and checking bundles is jobs/evidence.py's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import Counter
from typing import Any

from ..errors import IntegrityError
from .report import verdict_of

FORMAT = "backproof.evidence"
FORMAT_VERSION = 1
# What each kind of check proves, and the checks of that kind ("x.*": every check "x.…").
PROOFS: dict[str, tuple[str, tuple[str, ...]]] = {
    "restorability": (
        "the archive restored into a fresh PostgreSQL instance: pg_restore finished and none "
        "of its messages was fatal",
        ("restore",),
    ),
    "completeness": (
        "every table the source held at the snapshot is present with exactly its rows, and "
        "every kind of object in the recorded number",
        ("table_present", "row_count", "object_count"),
    ),
    "integrity": (
        "the stored manifest, archive and roles are the bytes that were signed and recorded "
        "(signature, size, SHA-256, encryption), and each restored table's content hashes as "
        "the source's did at the snapshot",
        ("integrity.*", "fingerprint"),
    ),
    "recovery_time": (
        "how long the restore took (timings.restore_seconds): the measured recovery time, "
        "against the target when one was given",
        (),
    ),
    "access": (
        "every schema's, relation's, sequence's and function's owner and grants are as "
        "recorded at the snapshot",
        ("owner", "privileges"),
    ),
}


def _of_kind(check: str, patterns: tuple[str, ...]) -> bool:
    return any(check.startswith(p[:-1]) if p.endswith(".*") else check == p for p in patterns)


def summarize(reports: list[dict[str, Any]], rto_target_seconds: float | None) -> dict[str, Any]:
    """Per kind of proof: what it proves, the checks of that kind, and each run's counts (or,
    for recovery time, its restore seconds against the target)."""
    summary: dict[str, Any] = {}
    for kind, (proves, checks) in PROOFS.items():
        runs: list[dict[str, Any]] = []
        for report in reports:
            run: dict[str, Any] = {"run_id": report.get("run_id"), "verdict": verdict_of(report)}
            if kind == "recovery_time":
                seconds = (report.get("timings") or {}).get("restore_seconds")
                run["restore_seconds"] = seconds
                run["met"] = (
                    None
                    if seconds is None or rto_target_seconds is None
                    else float(seconds) <= rto_target_seconds
                )
            else:
                counts = Counter(
                    str(c.get("verdict"))
                    for c in report.get("checks") or []
                    if isinstance(c, dict) and _of_kind(str(c.get("check", "")), checks)
                )
                run.update({v: counts.get(v, 0) for v in ("pass", "fail", "warn", "skip")})
            runs.append(run)
        summary[kind] = {"proves": proves, "checks": list(checks), "runs": runs}
    summary["recovery_time"]["target_seconds"] = rto_target_seconds
    return summary


def content(data: bytes) -> dict[str, Any]:
    """An object's bytes in the bundle: as text when it is UTF-8 (always, for JSON), so an
    auditor reads it; else base64. Either way exactly the stored bytes."""
    try:
        return {
            "text": data.decode("utf-8"),
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    except UnicodeDecodeError:
        encoded = base64.b64encode(data).decode("ascii")
        return {"base64": encoded, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def content_bytes(entry: dict[str, Any]) -> bytes:
    if isinstance(entry.get("text"), str):
        return str(entry["text"]).encode("utf-8")
    try:
        return base64.b64decode(str(entry["base64"]), validate=True)
    except (KeyError, binascii.Error) as exc:
        raise IntegrityError("an object in the bundle has neither text nor base64") from exc
