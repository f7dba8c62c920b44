"""The backup store every handler uses, built once per execution environment."""

from __future__ import annotations

from functools import cache

from backproof.store import BackupStore, open_store

from .env import settings


@cache
def store() -> BackupStore:
    config = settings()
    return open_store(config.store_url, kms_key_id=config.kms_key_id)
