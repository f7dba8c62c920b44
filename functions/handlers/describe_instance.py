"""Report a temporary instance's status for the workflow's poll loop."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from backproof.instances.rds import describe_instance

from .clients import rds
from .events import field
from .observability import logger, tracer

GONE = "not-found"


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    identifier = field(event, "instance_id")
    state = describe_instance(rds(), identifier)
    if state is None:
        return {"instance_id": identifier, "status": GONE}
    return {
        "instance_id": identifier,
        "status": state.status,
        "endpoint": state.host,
        "port": state.port,
        "secret_arn": state.secret_arn,
        "engine_version": state.engine_version,
        # When it was seen so: the first `available` ends a restore's measured time.
        "checked_at": datetime.now(UTC).isoformat(),
    }
