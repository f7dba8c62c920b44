"""After a successful operator restore into a new instance: take it off the janitor's list."""

from __future__ import annotations

from typing import Any

from backproof.contract import EPHEMERAL_TAG, EXPIRES_TAG

from .aws import keep_instance
from .clients import rds
from .events import field
from .observability import logger, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    identifier = field(event, "instance_id")
    arn = keep_instance(rds(), identifier, [EPHEMERAL_TAG, EXPIRES_TAG])
    logger.info("instance kept", extra={"instance_id": identifier})
    return {"instance_id": identifier, "instance_arn": arn, "kept": True}
