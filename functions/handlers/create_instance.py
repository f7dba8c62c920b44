"""Start creating the temporary RDS instance a restore goes into (does not wait)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from backproof.instances.rds import RdsSettings, create_instance

from .clients import rds
from .env import settings
from .events import field
from .observability import logger, tracer

SETTINGS = settings()
# Covers the slowest path the workflow allows (an hour of polling, a 24-hour restore task);
# past this the janitor deletes the instance even if its workflow never did.
INSTANCE_TTL = timedelta(hours=26)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    identifier = field(event, "instance_id")
    rds_settings = RdsSettings(
        subnet_group=field(event, "subnet_group_name"),
        security_group_ids=[field(event, "security_group_id")],
        instance_class=field(event, "instance_class"),
        storage_gb=field(event, "storage_gb", int),
        kms_key_id=SETTINGS.kms_key_id,
        ttl=INSTANCE_TTL,
        deployment=SETTINGS.deployment,
    )
    create_instance(
        rds(),
        major=field(event, "engine_major", int),
        settings=rds_settings,
        backup_id=field(event, "backup_id"),
        identifier=identifier,
    )
    logger.info("instance creation started", extra={"instance_id": identifier})
    return {"instance_id": identifier, "status": "creating"}
