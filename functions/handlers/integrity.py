"""Check a stored backup against its manifest, before any instance is created: the
manifest's signature first (whatever the archive's size), then size, SHA-256, encryption."""

from __future__ import annotations

from typing import Any

from backproof.jobs.integrity import IntegrityFailure, check_integrity
from backproof.jobs.signatures import manifest_signature

from .env import settings
from .events import field, only
from .observability import logger, tracer
from .stores import signing, store

SETTINGS = settings()
# Hash the archive here only when it surely fits the 15-minute Lambda limit (S3 reads at
# ~100 MB/s leave ample margin); larger archives are hashed by the restore task, which
# checks size and SHA-256 before it touches the instance.
LAMBDA_HASH_LIMIT = 20 << 30
# What a verify execution accepts: the console's two fields, and the parent execution's id
# that Step Functions adds when the backup workflow starts it.
INPUT_FIELDS = {"database", "backup_id", "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    only(event, INPUT_FIELDS, "the verify input")
    backups = store()
    stored = backups.find(field(event, "backup_id"), field(event, "database"))
    keys = signing()
    signature = manifest_signature(backups, stored, keys)
    if signature.failed:
        raise IntegrityFailure(
            f"backup {stored.backup_id} failed integrity checks, nothing was created: "
            f"{signature.check} ({signature.detail})",
            [signature],
            None,
        )
    manifest = backups.load_manifest(stored)
    hashed = manifest.archive.total_size <= LAMBDA_HASH_LIMIT
    if hashed:
        manifest, _ = check_integrity(backups, stored, signing=keys)
    logger.info(
        "integrity checked", extra={"backup_id": stored.backup_id, "sha256_checked": hashed}
    )
    return {
        "backup_id": stored.backup_id,
        "database": stored.database,
        "tier": manifest.tier,
        "server_major": manifest.server_major,
        "size": manifest.archive.total_size,
        "sha256_checked": hashed,
    }
