"""AWS plumbing the engine has no use for: verification slots, keeping a restored instance,
reading a database's deployed settings.

Kept out of the handlers so they stay adapters, and out of the engine because only the
deployed workflows need it.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from backproof.errors import BadInput

# Attributes of the slot item that are not slot holders.
SLOT_ITEM_FIELDS = ("pk", "count")
# Lock items (infra.fragments.Fragments.acquire_lock) carry kind = "lock".
LOCK_KIND = "lock"


def _locks(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    """Every lock item: a handful at most, in a table of a few items, so a scan is fine."""
    items: list[dict[str, Any]] = []
    paginator = dynamodb.get_paginator("scan")
    for page in paginator.paginate(
        TableName=table,
        FilterExpression="#kind = :lock",
        ExpressionAttributeNames={"#kind": "kind"},
        ExpressionAttributeValues={":lock": {"S": LOCK_KIND}},
        ConsistentRead=True,
    ):
        items += page.get("Items", [])
    return items


def backups_in_use(dynamodb: Any, table: str, database: str) -> frozenset[str]:
    """Ids of `database`'s backups a verification or restore holds a lock on right now."""
    return frozenset(
        item["backup_id"]["S"]
        for item in _locks(dynamodb, table)
        if item.get("database", {}).get("S") == database and "backup_id" in item
    )


def release_stale_locks(dynamodb: Any, sfn: Any, table: str) -> list[str]:
    """Remove locks held by executions that are no longer running; returns their keys."""
    freed = []
    for item in _locks(dynamodb, table):
        execution_arn = item.get("execution", {}).get("S", "")
        if _status(sfn, execution_arn) == "RUNNING":
            continue
        try:
            dynamodb.delete_item(
                TableName=table,
                Key={"pk": item["pk"]},
                ConditionExpression="#execution = :holder",
                ExpressionAttributeNames={"#execution": "execution"},
                ExpressionAttributeValues={":holder": {"S": execution_arn}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            continue  # released (and maybe taken again) meanwhile
        freed.append(item["pk"]["S"])
    return freed


def _status(sfn: Any, execution_arn: str) -> str:
    try:
        return str(sfn.describe_execution(executionArn=execution_arn)["status"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("ExecutionDoesNotExist", "InvalidArn"):
            raise
        return "GONE"


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
        if _status(sfn, execution_arn) == "RUNNING":
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


def configured_source(ssm: Any, prefix: str, database: str, named: str | None = None) -> str:
    """The database's RDS instance as configured (`rds_instance_id`). One named in a request
    must be that one: the stack lets the workflows restore only configured sources."""
    config = database_settings(ssm, prefix, database)
    if config is None:
        raise BadInput(f"database {database!r} is not configured in this deployment")
    configured = config.get("rds_instance_id")
    if not configured:
        raise BadInput(
            f"database {database!r} has no rds_instance_id in the configuration: its RDS "
            "snapshots and point-in-time restores cannot be verified"
        )
    if named is not None and named != configured:
        raise BadInput(
            f"source_instance {named!r} is not {database!r}'s configured RDS instance "
            f"({configured!r})"
        )
    return str(configured)
