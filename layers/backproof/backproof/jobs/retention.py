"""Grandfather-father-son retention: keep the newest N backups of each tier per database.

Rules, in order:
1. The newest verified backup of each database is never deleted, whatever the counts say.
2. Per database and tier, the newest `keep[tier]` complete backups are kept, and so is every
   backup younger than `keep_days[tier]` days: "keep at least N, and everything younger than
   D days". A backup is deleted only when it is outside both windows. A tier missing from
   `keep` keeps everything (manual backups by default).
3. Uploads without a manifest older than `incomplete_after` are removed (a died job's parts);
   younger ones may still be in progress and are left alone.
4. A backup due for deletion whose objects are still under S3 Object Lock retention is kept
   and reported "locked until …" (store/locking.py): never deleted, never a failure.
A dry run returns the same plan without deleting anything.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from ..errors import BadInput, UploadFailed
from ..model.manifest import TIERS
from ..store import BACKUPS, BackupStore, StoredBackup

DEFAULT_KEEP: dict[str, int] = {"daily": 7, "weekly": 5, "monthly": 12, "yearly": 3, "safety": 5}


@dataclass
class RetentionPolicy:
    keep: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_KEEP))
    incomplete_after: timedelta = timedelta(hours=24)
    # Per tier: backups younger than this many days are kept whatever the count says.
    keep_days: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None, days: str | None = None) -> RetentionPolicy:
        """`daily=7,weekly=4,...` (tiers not named keep their default count) and, optionally,
        `daily=10,monthly=400` days (tiers not named have no age window)."""
        keep = {**DEFAULT_KEEP, **_tier_numbers(text, "COUNT", "daily=7,weekly=4")}
        return cls(keep, keep_days=_tier_numbers(days, "DAYS", "daily=10,weekly=60"))


def _tier_numbers(text: str | None, what: str, example: str) -> dict[str, int]:
    numbers = {}
    for item in filter(None, (p.strip() for p in (text or "").split(","))):
        tier, _, number = item.partition("=")
        if tier not in TIERS or not number.isdigit():
            raise BadInput(
                f"retention {item!r} is malformed: use TIER={what} with TIER one of "
                f"{', '.join(TIERS)}, e.g. {example}"
            )
        numbers[tier] = int(number)
    return numbers


@dataclass
class Decision:
    backup_id: str
    database: str
    tier: str | None
    action: str  # keep | delete
    reason: str
    prefix: str


@dataclass
class RetentionPlan:
    decisions: list[Decision]
    dry_run: bool = True
    deleted: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    # Due for deletion but under Object Lock retention: {"backup_id", "locked_until"}.
    locked: list[dict[str, str]] = field(default_factory=list)

    @property
    def to_delete(self) -> list[Decision]:
        return [d for d in self.decisions if d.action == "delete"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "keep": sum(d.action == "keep" for d in self.decisions),
            "delete": len(self.to_delete),
            "deleted": self.deleted,
            "failed": self.failed,
            "locked": self.locked,
            "decisions": [asdict(d) for d in self.decisions],
        }


def plan_retention(
    backups: list[StoredBackup],
    policy: RetentionPolicy,
    now: datetime | None = None,
    in_use: frozenset[str] = frozenset(),
) -> RetentionPlan:
    """`in_use`: ids of backups a running verification or restore holds; they are kept."""
    now = now or datetime.now(UTC)
    decisions: list[Decision] = []
    by_database: dict[str, list[StoredBackup]] = defaultdict(list)
    for b in backups:
        by_database[b.database].append(b)
    for database, items in sorted(by_database.items()):
        complete = sorted((b for b in items if b.complete), key=lambda b: b.backup_id, reverse=True)
        # The newest backup that has ever verified stays until a newer one verifies: a later
        # run that could not verify (or a re-verification during an outage) cannot expose it.
        verified = [b for b in complete if b.ever_verified]
        protected = verified[0].backup_id if verified else None
        seen: dict[str, int] = defaultdict(int)
        for b in complete:
            tier = b.manifest.tier if b.manifest else "unknown"
            seen[tier] += 1
            if b.backup_id == protected:
                action, reason = "keep", "newest verified backup of the database"
            elif b.backup_id in in_use:
                action, reason = "keep", "being verified or restored right now"
            elif b.manifest is None:
                action, reason = "keep", "manifest unreadable: left for a person to inspect"
            else:
                action, reason = _by_rules(b, tier, seen[tier], policy, now)
            decisions.append(Decision(b.backup_id, database, tier, action, reason, b.prefix))
        decisions += [_incomplete(b, database, policy, now) for b in items if not b.complete]
    return RetentionPlan(decisions)


def _by_rules(
    b: StoredBackup, tier: str, rank: int, policy: RetentionPolicy, now: datetime
) -> tuple[str, str]:
    """Keep the newest `keep[tier]` and everything younger than `keep_days[tier]` days."""
    limit = policy.keep.get(tier)
    days = policy.keep_days.get(tier)
    if limit is None:
        return "keep", f"tier {tier} has no limit"
    if rank <= limit:
        return "keep", f"{rank} of {limit} newest {tier}"
    age = now - b.created_at
    if days is not None and age < timedelta(days=days):
        return "keep", f"younger than {days} days ({age.days} days old)"
    window = f" and older than {days} days" if days is not None else ""
    return "delete", f"older than the newest {limit} {tier}{window}"


def _incomplete(b: StoredBackup, database: str, policy: RetentionPolicy, now: datetime) -> Decision:
    """An upload without a manifest: removed once old enough that it cannot be running."""
    age = now - (b.last_modified or b.created_at)
    if age > policy.incomplete_after and not b.in_progress_uploads:
        return Decision(
            b.backup_id, database, None, "delete", f"incomplete upload, {age} old", b.prefix
        )
    return Decision(
        b.backup_id, database, None, "keep", "incomplete upload, may still be running", b.prefix
    )


def _keep_locked(store: BackupStore, plan: RetentionPlan, now: datetime) -> None:
    """Backups due for deletion but under Object Lock retention are kept, with the date."""
    for decision in plan.to_delete:
        until = store.locked_until(decision.prefix, now)
        if until is not None:
            decision.action = "keep"
            decision.reason = f"locked until {until.isoformat()} (Object Lock retention)"
            plan.locked.append({"backup_id": decision.backup_id, "locked_until": until.isoformat()})


def apply_retention(
    store: BackupStore,
    policy: RetentionPolicy,
    *,
    database: str | None = None,
    dry_run: bool = True,
    now: datetime | None = None,
    in_use: frozenset[str] = frozenset(),
    namespace: str = BACKUPS,
) -> RetentionPlan:
    """Plan (and unless `dry_run`, apply) retention in one namespace: a database's backups, or
    the safety backups of restore targets (each target keeps its newest `safety` ones)."""
    backups = store.list_backups(database, include_incomplete=True, namespace=namespace)
    plan = plan_retention(backups, policy, now, in_use)
    plan.dry_run = dry_run
    _keep_locked(store, plan, now or datetime.now(UTC))
    if dry_run:
        return plan
    for decision in plan.to_delete:
        try:
            store.delete_prefix(decision.prefix)
            plan.deleted.append(decision.backup_id)
        except (ClientError, UploadFailed) as exc:  # Object Lock, permissions: report, go on
            plan.failed.append({"backup_id": decision.backup_id, "error": str(exc)})
    return plan
