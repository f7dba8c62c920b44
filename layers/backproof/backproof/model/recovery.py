"""Recovery time and recovery point, measured end to end on a verification, against targets.

`recovery_seconds`: from the start of a run to a checked, usable database: the download and
integrity check, the instance becoming ready (overlapping the decompression, so the slower of
the two counts), the restore and the checks; not the teardown. Measured only when the checks
ran. `recovery_point_age_seconds`: how old the data was at that moment, the run's end minus
the snapshot time in the manifest (what a real restore then would have lost).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

MET, MISSED, UNKNOWN = "met", "missed", "unknown"


@dataclass(frozen=True)
class RecoveryTargets:
    """Recovery time and recovery point objectives (either may be unset)."""

    rto: timedelta | None = None
    rpo: timedelta | None = None


def _parsed(value: str | None) -> datetime | None:
    if not value or value == "None":
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def recovery_seconds(timings: dict[str, float]) -> float | None:
    """Time to a checked database from a report's timings; None unless restore and checks ran."""
    if "restore_seconds" not in timings or "checks_seconds" not in timings:
        return None
    ready = max(timings.get("instance_seconds", 0.0), timings.get("decompress_seconds", 0.0))
    parts = (
        timings.get("integrity_seconds", 0.0),
        ready,
        timings["restore_seconds"],
        timings["checks_seconds"],
    )
    return round(sum(parts), 3)


def recovery_point_age(snapshot_taken_at: str | None, finished_at: str | None) -> float | None:
    taken, finished = _parsed(snapshot_taken_at), _parsed(finished_at)
    if taken is None or finished is None:
        return None
    return round((finished - taken).total_seconds(), 3)


def _verdict(value: float | None, target: timedelta | None) -> str:
    if value is None or target is None:
        return UNKNOWN
    return MET if value <= target.total_seconds() else MISSED


def recovery(
    timings: dict[str, float],
    snapshot_taken_at: str | None,
    finished_at: str | None,
    targets: RecoveryTargets | None,
) -> dict[str, Any]:
    """The report's `recovery` section: both measures, their targets and verdicts."""
    targets = targets or RecoveryTargets()
    seconds = recovery_seconds(timings)
    age = recovery_point_age(snapshot_taken_at, finished_at) if seconds is not None else None
    return {
        "recovery_seconds": seconds,
        "recovery_point_age_seconds": age,
        "rto_target_seconds": targets.rto.total_seconds() if targets.rto else None,
        "rpo_target_seconds": targets.rpo.total_seconds() if targets.rpo else None,
        "rto": _verdict(seconds, targets.rto),
        "rpo": _verdict(age, targets.rpo),
    }
