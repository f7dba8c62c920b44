"""Where a verification restores to: a local ephemeral cluster or a temporary RDS instance,
behind one lifecycle (`Instance`: provisioned, always torn down)."""

from __future__ import annotations

from typing import Any

from ..errors import BadInput
from .base import Instance, live_instances
from .local import LocalInstance
from .rds import RdsInstance

__all__ = ["INSTANCE_KINDS", "Instance", "live_instances", "open_instance"]

INSTANCE_KINDS = ("local", "rds")


def open_instance(kind: str, *, major: int, **options: Any) -> Instance:
    """An instance of `kind` for a server of major version `major` (or the nearest newer)."""
    if kind == "local":
        return LocalInstance(major=major, **options)
    if kind == "rds":
        return RdsInstance(major=major, **options)
    raise BadInput(f"unknown instance kind {kind!r}: use one of {', '.join(INSTANCE_KINDS)}")
