"""The backup store every handler uses, built once per execution environment."""

from __future__ import annotations

from functools import cache

from backproof.store import BackupStore

from .env import settings


@cache
def store() -> BackupStore:
    config = settings()
    return BackupStore.from_url(config.store_url, kms_key_id=config.kms_key_id)
