"""AWS plumbing the engine has no use for: verification slots, keeping a restored instance,
reading a database's deployed settings.

Kept out of the handlers so they stay adapters, and out of the engine because only the
deployed workflows need it.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

# Attributes of the slot item that are not slot holders.
SLOT_ITEM_FIELDS = ("pk", "count")


def release_stale_slots(dynamodb: Any, sfn: Any, table: str, key: str) -> list[str]:
    """Free slots held by executions that are no longer running (aborted, timed out, crashed).

    A verify execution frees its own slot on every path it controls; this covers the paths it
    cannot (StopExecution, a state machine timeout). Returns the execution names freed.
    """
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True).get(
        "Item", {}
    )
    freed = []
    for name, value in item.items():
        if name in SLOT_ITEM_FIELDS:
            continue
        execution_arn = value.get("S", "")
        try:
            status = sfn.describe_execution(executionArn=execution_arn)["status"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist":
                raise
            status = "GONE"
        if status == "RUNNING":
            continue
        try:
            dynamodb.update_item(
                TableName=table,
                Key={"pk": {"S": key}},
                UpdateExpression="SET #count = #count - :one REMOVE #holder",
                ConditionExpression="attribute_exists(#holder)",
                ExpressionAttributeNames={"#count": "count", "#holder": name},
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            continue  # released meanwhile by its own execution
        freed.append(name)
    return freed


def keep_instance(rds: Any, identifier: str, tag_keys: list[str]) -> str:
    """Remove the ephemeral tags so the janitor leaves an operator's restored instance alone."""
    arn = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0][
        "DBInstanceArn"
    ]
    rds.remove_tags_from_resource(ResourceName=arn, TagKeys=tag_keys)
    return arn


def database_settings(ssm: Any, prefix: str, database: str) -> dict[str, Any] | None:
    """The settings the stack stored for `database` (one SSM parameter each), or None."""
    try:
        value = ssm.get_parameter(Name=f"{prefix}/{database}")["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise
    data = json.loads(value)
    return data if isinstance(data, dict) else None
