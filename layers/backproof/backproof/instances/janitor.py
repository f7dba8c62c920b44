"""The janitor's sweep: delete every temporary instance of one deployment past its expiry.

An instance a crashed or stopped execution left behind costs money and holds a copy of the
data; the sweep removes it. It considers only instances the deployment created (prefix,
ephemeral tag, deployment tag), skips with a reason anything it may not or cannot delete, and
goes on with the rest: one stuck instance must not shelter the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import DeletionRefused
from .rds import DELETING_STATES, delete_instance, expiry, is_ephemeral, refusal, state_of


@dataclass
class Sweep:
    deleted: list[str] = field(default_factory=list)
    # {"identifier", "reason"} for expired instances that could not be deleted
    skipped: list[dict[str, str]] = field(default_factory=list)


def delete_expired(rds: Any, deployment: str, now: datetime | None = None) -> Sweep:
    """Delete this deployment's temporary instances past their expiry (an instance without a
    readable expiry counts as expired: nothing else would ever clean it up)."""
    now = now or datetime.now(UTC)
    sweep = Sweep()
    for page in rds.get_paginator("describe_db_instances").paginate():
        for db in page.get("DBInstances", []):
            state = state_of(db)
            if not is_ephemeral(state) or state.status in DELETING_STATES:
                continue
            if refusal(state, deployment) is not None:
                continue  # another deployment's, or not ours at all: not this sweep's business
            expires = expiry(state)
            if expires is not None and expires > now:
                continue
            try:
                if delete_instance(rds, state.identifier, deployment=deployment):
                    sweep.deleted.append(state.identifier)
            except (ClientError, BotoCoreError, DeletionRefused) as exc:
                sweep.skipped.append({"identifier": state.identifier, "reason": str(exc)})
    return sweep
