"""Start restoring one of RDS's own ways back (planned by native_plan) into a new temporary
instance: private, encrypted, tagged ephemeral with an expiry, master password managed by RDS.
Does not wait; the workflow polls describe_instance and always ends in delete_instance."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from backproof.instances.native import WayBack, restore_way_back
from backproof.instances.rds import RdsSettings

from .clients import rds
from .create_instance import INSTANCE_TTL
from .env import settings
from .events import field
from .observability import logger, tracer

SETTINGS = settings()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    identifier = field(event, "instance_id")
    way = WayBack.from_dict(field(event, "way_back", dict))
    rds_settings = RdsSettings(
        subnet_group=field(event, "subnet_group_name"),
        security_group_ids=[field(event, "security_group_id")],
        instance_class=field(event, "instance_class"),
        kms_key_id=SETTINGS.kms_key_id,
        ttl=INSTANCE_TTL,
        deployment=SETTINGS.deployment,
    )
    started = datetime.now(UTC)
    restore_way_back(rds(), way, settings=rds_settings, identifier=identifier)
    logger.info("restore started", extra={"instance_id": identifier, "way_back": way.label})
    return {
        "instance_id": identifier,
        "status": "creating",
        "started_at": started.isoformat(),
    }
