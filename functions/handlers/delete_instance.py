"""Delete a temporary instance (no final snapshot). Idempotent: gone counts as deleted."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from backproof.instances.rds import delete_instance

from .clients import rds
from .env import settings
from .events import field
from .observability import logger, tracer

SETTINGS = settings()


class InstanceBusy(RuntimeError):
    """RDS refuses deletion in the instance's current state; the workflow retries."""


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    identifier = field(event, "instance_id")
    try:
        started = delete_instance(rds(), identifier, deployment=SETTINGS.deployment)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "InvalidDBInstanceState":
            raise InstanceBusy(f"instance {identifier} cannot be deleted yet: {code}") from exc
        raise
    logger.info("instance deletion", extra={"instance_id": identifier, "started": started})
    return {"instance_id": identifier, "deletion_started": started}
