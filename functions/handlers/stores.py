"""The backup store every handler uses, built once per execution environment; and the
public key that checks signatures, where the stack gives a function the signing key."""

from __future__ import annotations

import os
from functools import cache

from backproof.signing import Signing, open_signing
from backproof.store import BackupStore, open_store

from .env import settings


@cache
def store() -> BackupStore:
    config = settings()
    return open_store(config.store_url, kms_key_id=config.kms_key_id)


@cache
def signing() -> Signing | None:
    """Checks signatures only (kms:GetPublicKey); None where no signing key is configured."""
    key_id = os.environ.get("BACKPROOF_SIGNING_KMS_KEY_ID", "").strip()
    return open_signing(kms_key_id=key_id, sign_with_kms=False) if key_id else None
