"""Health per database, read from the store alone: what `backproof status` prints and what the
deployed freshness function publishes.

For each database: its newest backup, its newest verified backup and that backup's age (taken
from the backup's own time, the snapshot a restore would bring back), the last run of each
verdict, the last measured restore time against a recovery-time target, and the archive sizes
of its last backups. Safety backups (tier `safety`, taken before an operator restore replaces
a target) are someone's undo, not the database's protection: they never count.

A database is fresh when its newest verified backup is no older than its allowed age. A
backup's verdict is the latest conclusive one (`StoredBackup.verification`, read with
`verification_status`): a run that could not verify never makes it verified.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import BadInput
from ..model.operator import parse_duration
from ..model.report import COULD_NOT_VERIFY, FAILED, VERIFIED, verification_status
from ..store import BackupStore, StoredBackup

DEFAULT_MAX_AGE = timedelta(hours=26)
# How many of the last backups the size trend shows.
TREND_LENGTH = 12
SAFETY_TIER = "safety"
# The verdicts a run can have, in the order they are shown.
VERDICTS = (VERIFIED, FAILED, COULD_NOT_VERIFY)


def _seconds(delta: timedelta) -> float:
    return round(delta.total_seconds(), 3)


@dataclass(frozen=True)
class BackupRef:
    """One backup as the status names it."""

    backup_id: str
    tier: str | None
    created_at: datetime
    age_seconds: float
    size: int | None
    verification: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "tier": self.tier,
            "created_at": self.created_at.isoformat(),
            "age_seconds": self.age_seconds,
            "size": self.size,
            "verification": self.verification,
        }


@dataclass(frozen=True)
class Run:
    """The last verification run with one verdict."""

    verdict: str
    backup_id: str
    finished_at: datetime
    age_seconds: float
    restore_seconds: float | None
    detail: str | None  # the error, or the first failed check
    # Time to a checked database and the data's age then (model/recovery.py), when measured.
    recovery_seconds: float | None = None
    recovery_point_age_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "backup_id": self.backup_id,
            "finished_at": self.finished_at.isoformat(),
            "age_seconds": self.age_seconds,
            "restore_seconds": self.restore_seconds,
            "recovery_seconds": self.recovery_seconds,
            "recovery_point_age_seconds": self.recovery_point_age_seconds,
            "detail": self.detail,
        }


@dataclass
class DatabaseStatus:
    database: str
    max_age: timedelta
    newest: BackupRef | None = None
    newest_verified: BackupRef | None = None
    last_runs: dict[str, Run] = field(default_factory=dict)
    # The newest run that measured a restore, and the target it is held against.
    restore: Run | None = None
    rto_target: timedelta | None = None
    # The recovery point objective, held against the newest verified backup's age: the data a
    # restore right now would lose.
    rpo_target: timedelta | None = None
    # (backup id, archive bytes) of the last backups, oldest first.
    sizes: list[tuple[str, int]] = field(default_factory=list)
    backups: int = 0

    @property
    def verified_age_seconds(self) -> float | None:
        return self.newest_verified.age_seconds if self.newest_verified else None

    @property
    def fresh(self) -> bool:
        age = self.verified_age_seconds
        return age is not None and age <= self.max_age.total_seconds()

    @property
    def recovery_seconds(self) -> float | None:
        """The last measured time to a checked database (older reports: the restore alone)."""
        if self.restore is None:
            return None
        measured = self.restore.recovery_seconds
        return measured if measured is not None else self.restore.restore_seconds

    @property
    def rto_met(self) -> bool | None:
        if self.rto_target is None or self.recovery_seconds is None:
            return None
        return self.recovery_seconds <= self.rto_target.total_seconds()

    @property
    def rpo_met(self) -> bool | None:
        age = self.verified_age_seconds
        if self.rpo_target is None or age is None:
            return None
        return age <= self.rpo_target.total_seconds()

    @property
    def problems(self) -> list[str]:
        found = []
        if self.newest_verified is None:
            found.append("never verified" if self.backups else "no backups")
        elif not self.fresh:
            found.append(f"newest verified backup is older than the allowed {_short(self.max_age)}")
        if self.rto_met is False:
            found.append("last restore slower than the recovery-time target")
        if self.rpo_met is False:
            found.append("newest verified backup older than the recovery-point target")
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "fresh": self.fresh,
            "allowed_age_seconds": _seconds(self.max_age),
            "verified_age_seconds": self.verified_age_seconds,
            "newest_backup": self.newest.to_dict() if self.newest else None,
            "newest_verified_backup": (
                self.newest_verified.to_dict() if self.newest_verified else None
            ),
            "last_runs": {
                v: (self.last_runs[v].to_dict() if v in self.last_runs else None) for v in VERDICTS
            },
            "restore_seconds": self.restore.restore_seconds if self.restore else None,
            "restore_backup_id": self.restore.backup_id if self.restore else None,
            "rto_target_seconds": _seconds(self.rto_target) if self.rto_target else None,
            "rto_met": self.rto_met,
            "recovery_seconds": self.recovery_seconds,
            "recovery_point_age_seconds": (
                self.restore.recovery_point_age_seconds if self.restore else None
            ),
            "rpo_target_seconds": _seconds(self.rpo_target) if self.rpo_target else None,
            "rpo_met": self.rpo_met,
            "size_trend": [{"backup_id": b, "size": s} for b, s in self.sizes],
            "backups": self.backups,
            "problems": self.problems,
        }


@dataclass
class StatusReport:
    store: str
    checked_at: datetime
    databases: list[DatabaseStatus]

    @property
    def healthy(self) -> bool:
        """Every database has a verified backup within its allowed age (and there is one)."""
        return bool(self.databases) and all(d.fresh for d in self.databases)

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "checked_at": self.checked_at.isoformat(),
            "healthy": self.healthy,
            "databases": [d.to_dict() for d in self.databases],
        }


@dataclass(frozen=True)
class AgeLimits:
    """How old a database's newest verified backup may be: one default, and per database."""

    default: timedelta = DEFAULT_MAX_AGE
    per_database: dict[str, timedelta] = field(default_factory=dict)

    @classmethod
    def parse(cls, values: Sequence[str]) -> AgeLimits:
        """`26h` sets the default; `billing=8d` one database's (repeatable, comma-separable)."""
        default = DEFAULT_MAX_AGE
        per_database: dict[str, timedelta] = {}
        for item in (p.strip() for v in values for p in v.split(",")):
            if not item:
                continue
            name, sep, age = item.rpartition("=")
            if sep and not name:
                raise BadInput(f"max age {item!r} is malformed: use AGE or DATABASE=AGE")
            limit = parse_duration(age)
            if name:
                per_database[name] = limit
            else:
                default = limit
        return cls(default, per_database)

    def of(self, database: str) -> timedelta:
        return self.per_database.get(database, self.default)


def _short(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g}h" if hours < 72 else f"{hours / 24:g}d"


def _tier(b: StoredBackup) -> str | None:
    return b.manifest.tier if b.manifest else None


def _size(b: StoredBackup) -> int | None:
    return b.manifest.archive.total_size if b.manifest else (b.archive_size or None)


def _ref(b: StoredBackup, now: datetime) -> BackupRef:
    return BackupRef(
        b.backup_id,
        _tier(b),
        b.created_at,
        _seconds(now - b.created_at),
        _size(b),
        verification_status(b.verification)[0],
    )


def _runs(b: StoredBackup) -> list[dict[str, Any]]:
    """Every verification run of a backup (could-not-verify included), else its status."""
    runs = list(getattr(b, "verifications", None) or [])
    return runs or ([b.verification] if b.verification else [])


def _when(report: dict[str, Any], fallback: datetime) -> datetime:
    for key in ("finished_at", "started_at"):
        try:
            when = datetime.fromisoformat(str(report[key]))
        except (KeyError, ValueError):
            continue
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return fallback


def _detail(report: dict[str, Any]) -> str | None:
    if report.get("error"):
        return str(report["error"])
    failed = report.get("failed_checks") or []
    if failed and isinstance(failed[0], dict):
        c = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return (
            f"{c.get('check')} {c.get('subject')}: expected {c.get('expected')}, "
            f"found {c.get('found')}{more}"
        )
    return None


def _last_runs(backups: Iterable[StoredBackup], now: datetime) -> list[Run]:
    runs = []
    for b in backups:
        for report in _runs(b):
            verdict, seconds = verification_status(report)
            finished = _when(report, b.created_at)
            section = report.get("recovery")
            measured: dict[str, Any] = section if isinstance(section, dict) else {}
            runs.append(
                Run(
                    verdict,
                    b.backup_id,
                    finished,
                    _seconds(now - finished),
                    seconds,
                    _detail(report),
                    measured.get("recovery_seconds"),
                    measured.get("recovery_point_age_seconds"),
                )
            )
    return sorted(runs, key=lambda r: r.finished_at)


def database_status(
    database: str,
    backups: Sequence[StoredBackup],
    *,
    max_age: timedelta = DEFAULT_MAX_AGE,
    rto_target: timedelta | None = None,
    now: datetime | None = None,
    rpo_target: timedelta | None = None,
) -> DatabaseStatus:
    """The status of one database from its stored backups (any order; others are ignored)."""
    now = now or datetime.now(UTC)
    mine = sorted(
        (b for b in backups if b.database == database and b.complete and _tier(b) != SAFETY_TIER),
        key=lambda b: b.backup_id,
    )
    status = DatabaseStatus(
        database, max_age, rto_target=rto_target, rpo_target=rpo_target, backups=len(mine)
    )
    if mine:
        status.newest = _ref(mine[-1], now)
    verified = [b for b in mine if verification_status(b.verification)[0] == VERIFIED]
    if verified:
        status.newest_verified = _ref(verified[-1], now)
    runs = _last_runs(mine, now)
    status.last_runs = {r.verdict: r for r in runs}
    timed = [r for r in runs if r.restore_seconds is not None or r.recovery_seconds is not None]
    status.restore = timed[-1] if timed else None
    status.sizes = [
        (b.backup_id, size) for b in mine[-TREND_LENGTH:] if (size := _size(b)) is not None
    ]
    return status


def store_status(
    store: BackupStore,
    *,
    database: str | None = None,
    limits: AgeLimits | None = None,
    rto_target: timedelta | None = None,
    now: datetime | None = None,
    rpo_target: timedelta | None = None,
) -> StatusReport:
    """Every database in the store (or the one named, even with no backups at all). A database
    whose only backups are safety backups (a restore target) is not one that is protected."""
    now = now or datetime.now(UTC)
    limits = limits or AgeLimits()
    backups = store.list_backups(database)
    names = {database} if database else {b.database for b in backups if _tier(b) != SAFETY_TIER}
    statuses = [
        database_status(
            name,
            backups,
            max_age=limits.of(name),
            rto_target=rto_target,
            rpo_target=rpo_target,
            now=now,
        )
        for name in sorted(names)
    ]
    return StatusReport(store.url, now, statuses)
