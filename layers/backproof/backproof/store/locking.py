"""S3 Object Lock per tier: every object of a backup is written under retention (GOVERNANCE or
COMPLIANCE mode, for the tier's number of days), and retention reads the objects' retain-until
dates before it deletes anything.

In a bucket with Object Lock (always versioned), deleting a locked object without a version id
does not fail: S3 adds a delete marker, the backup disappears from listings and its locked
versions stay billed until their retention ends. So a backup under retention must be kept
and reported, never "deleted".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import BadInput
from ..model.manifest import TIERS

MODES = ("GOVERNANCE", "COMPLIANCE")
ENV = "BACKPROOF_OBJECT_LOCK"
EXAMPLE = "daily=GOVERNANCE:7,monthly=COMPLIANCE:365"


@dataclass(frozen=True)
class TierLock:
    mode: str
    days: int


@dataclass(frozen=True)
class LockPolicy:
    """Per tier, the Object Lock every object of a backup of that tier is written under."""

    tiers: dict[str, TierLock] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> LockPolicy:
        """`daily=GOVERNANCE:7,monthly=COMPLIANCE:365`; tiers not named are not locked."""
        tiers: dict[str, TierLock] = {}
        for item in filter(None, (p.strip() for p in (text or "").split(","))):
            tier, _, rule = item.partition("=")
            mode, _, days = rule.partition(":")
            mode = mode.upper()
            if tier not in (*TIERS, "safety") or mode not in MODES or not days.isdigit():
                raise BadInput(
                    f"object lock {item!r} is malformed: use TIER=MODE:DAYS with MODE one of "
                    f"{', '.join(MODES)}, e.g. {EXAMPLE}"
                )
            if int(days) < 1:
                raise BadInput(f"object lock {item!r}: DAYS must be at least 1")
            tiers[tier] = TierLock(mode, int(days))
        return cls(tiers)

    def args(self, tier: str | None, now: datetime | None = None) -> dict[str, Any]:
        """The PutObject/CreateMultipartUpload arguments for an object of `tier` ({} if none)."""
        lock = self.tiers.get(tier or "")
        if lock is None:
            return {}
        until = (now or datetime.now(UTC)) + timedelta(days=lock.days)
        return {"ObjectLockMode": lock.mode, "ObjectLockRetainUntilDate": until}

    def describe(self) -> str:
        return ",".join(f"{t}={lock.mode}:{lock.days}" for t, lock in self.tiers.items())


def lock_args(policy: LockPolicy | None, tier: str | None) -> dict[str, Any]:
    return policy.args(tier) if policy else {}


def latest_retention(heads: Iterable[dict[str, Any]], now: datetime) -> datetime | None:
    """The latest retain-until date still in the future among HeadObject answers, if any."""
    found = None
    for head in heads:
        until = head.get("ObjectLockRetainUntilDate")
        if isinstance(until, datetime):
            until = until if until.tzinfo else until.replace(tzinfo=UTC)
            if until > now and (found is None or until > found):
                found = until
    return found
