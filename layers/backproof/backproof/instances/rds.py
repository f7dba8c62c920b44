"""Temporary RDS for PostgreSQL instances for verification restores.

Each instance is created for one verification and deleted after it: engine major version from
the manifest, private (not publicly accessible, in the given subnet group), storage encrypted,
no automated backups, no deletion protection, master password managed by RDS in Secrets
Manager, tagged ephemeral with an expiry so the janitor (`delete_expired`) removes any that a
crashed workflow left behind. Deletion never takes a final snapshot.

The Step Functions workflow calls `create_instance`, polls `describe_instance` from a Wait/Choice
loop and finally calls `delete_instance`; the CLI uses `RdsInstance`, which does all three.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError, WaiterError

from ..contract import BACKUP_TAG, DEPLOYMENT_TAG, EPHEMERAL_TAG, EXPIRES_TAG, INSTANCE_PREFIX
from ..errors import BackproofError, BadInput, DeletionRefused, JobFailed
from ..pg.target import Target
from .base import Instance

MASTER_USERNAME = "backproof"
DEFAULT_INSTANCE_CLASS = "db.t4g.medium"
DEFAULT_STORAGE_GB = 20
DEFAULT_TTL = timedelta(hours=6)
# Creating an RDS instance usually takes 5-15 minutes; beyond this something is wrong.
AVAILABLE_TIMEOUT_S = 45 * 60
_GONE = ("DBInstanceNotFound", "DBInstanceNotFoundFault")
DELETING_STATES = ("deleting",)
# The deployment tag of instances the command line creates (a deployed stack uses its name).
CLI_DEPLOYMENT = "cli"


@dataclass
class RdsSettings:
    """Where and how temporary instances are created (from CDK outputs or CLI flags)."""

    subnet_group: str
    security_group_ids: list[str] = field(default_factory=list)
    instance_class: str = DEFAULT_INSTANCE_CLASS
    storage_gb: int = DEFAULT_STORAGE_GB
    kms_key_id: str | None = None  # storage encryption key; None: the AWS managed key
    ttl: timedelta = DEFAULT_TTL
    region: str | None = None
    # Tagged on every instance; the deployment's janitor sweeps only its own.
    deployment: str = CLI_DEPLOYMENT

    def validate(self) -> RdsSettings:
        if not self.subnet_group:
            raise BadInput(
                "an RDS verification needs a DB subnet group of private subnets "
                "(--rds-subnet-group or BACKPROOF_RDS_SUBNET_GROUP)"
            )
        if self.storage_gb < 20:
            raise BadInput("RDS for PostgreSQL needs at least 20 GB of storage")
        return self


@dataclass
class InstanceState:
    identifier: str
    status: str
    host: str | None
    port: int | None
    secret_arn: str | None
    engine_version: str
    tags: dict[str, str]

    @property
    def available(self) -> bool:
        return self.status == "available"


def new_identifier(backup_id: str | None = None) -> str:
    # RDS identifiers: letters, digits, hyphens; start with a letter; at most 63 characters.
    suffix = (backup_id or "").lower().replace("t", "").replace("z", "")[:21]
    return f"{INSTANCE_PREFIX}{suffix}-{secrets.token_hex(3)}".replace("--", "-")[:63]


def ephemeral_tags(settings: RdsSettings, now: datetime | None = None) -> list[dict[str, str]]:
    """The tags every temporary instance carries: ephemeral, its expiry, its deployment."""
    expires = (now or datetime.now(UTC)) + settings.ttl
    return [
        {"Key": EPHEMERAL_TAG, "Value": "true"},
        {"Key": EXPIRES_TAG, "Value": expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
        {"Key": DEPLOYMENT_TAG, "Value": settings.deployment},
    ]


def create_instance(
    rds: Any,
    *,
    major: int,
    settings: RdsSettings,
    backup_id: str | None = None,
    identifier: str | None = None,
    now: datetime | None = None,
) -> str:
    """Start creating the instance; returns its identifier without waiting."""
    settings.validate()
    identifier = identifier or new_identifier(backup_id)
    tags = ephemeral_tags(settings, now)
    if backup_id:
        tags.append({"Key": BACKUP_TAG, "Value": backup_id})
    args: dict[str, Any] = {
        "DBInstanceIdentifier": identifier,
        "Engine": "postgres",
        "EngineVersion": str(major),  # RDS picks the default minor of this major
        "DBInstanceClass": settings.instance_class,
        "AllocatedStorage": settings.storage_gb,
        "StorageType": "gp3",
        "MasterUsername": MASTER_USERNAME,
        "ManageMasterUserPassword": True,
        "DBSubnetGroupName": settings.subnet_group,
        "PubliclyAccessible": False,
        "StorageEncrypted": True,
        "BackupRetentionPeriod": 0,
        "DeletionProtection": False,
        "MultiAZ": False,
        "AutoMinorVersionUpgrade": False,
        "CopyTagsToSnapshot": False,
        "Tags": tags,
    }
    if settings.security_group_ids:
        args["VpcSecurityGroupIds"] = list(settings.security_group_ids)
    if settings.kms_key_id:
        args["KmsKeyId"] = settings.kms_key_id
    try:
        rds.create_db_instance(**args)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise JobFailed(
            f"cannot create RDS instance {identifier}: {code}: "
            f"{exc.response.get('Error', {}).get('Message', exc)}"
        ) from exc
    return identifier


def describe_instance(rds: Any, identifier: str) -> InstanceState | None:
    """Current state, or None once the instance is gone."""
    try:
        db = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _GONE:
            return None
        raise
    return state_of(db)


def state_of(db: dict[str, Any]) -> InstanceState:
    endpoint = db.get("Endpoint") or {}
    secret = db.get("MasterUserSecret") or {}
    return InstanceState(
        identifier=db["DBInstanceIdentifier"],
        status=db.get("DBInstanceStatus", "unknown"),
        host=endpoint.get("Address"),
        port=int(endpoint["Port"]) if endpoint.get("Port") else None,
        secret_arn=secret.get("SecretArn"),
        engine_version=str(db.get("EngineVersion", "")),
        tags={t["Key"]: t["Value"] for t in db.get("TagList", [])},
    )


def wait_available(
    rds: Any, identifier: str, timeout_s: int = AVAILABLE_TIMEOUT_S, delay_s: int = 30
) -> InstanceState:
    waiter = rds.get_waiter("db_instance_available")
    try:
        waiter.wait(
            DBInstanceIdentifier=identifier,
            WaiterConfig={"Delay": delay_s, "MaxAttempts": max(1, timeout_s // delay_s)},
        )
    except WaiterError as exc:
        raise JobFailed(f"RDS instance {identifier} did not become available: {exc}") from exc
    state = describe_instance(rds, identifier)
    if state is None or not state.host:
        raise JobFailed(f"RDS instance {identifier} has no endpoint after becoming available")
    return state


def refusal(state: InstanceState, deployment: str | None = None) -> str | None:
    """Why the engine must not delete this instance, or None when it may: only instances named
    with the prefix and tagged ephemeral (and, given a deployment, tagged with it) are
    backproof's to throw away. IAM says the same; this is the line that does not depend on
    how IAM was configured."""
    if not state.identifier.startswith(INSTANCE_PREFIX):
        return f"its name does not start with {INSTANCE_PREFIX!r}"
    if not is_ephemeral(state):
        return f"it is not tagged {EPHEMERAL_TAG}=true"
    owner = state.tags.get(DEPLOYMENT_TAG)
    if deployment is not None and owner != deployment:
        return f"it belongs to deployment {owner!r}, not {deployment!r}"
    return None


def delete_instance(rds: Any, identifier: str, *, deployment: str | None = None) -> bool:
    """Delete without a final snapshot; True if a deletion was started, False if already gone.
    DeletionRefused for anything that is not a temporary instance of ours (see `refusal`)."""
    state = describe_instance(rds, identifier)
    if state is None:
        return False
    reason = refusal(state, deployment)
    if reason is not None:
        raise DeletionRefused(
            f"refusing to delete RDS instance {identifier}: {reason}; backproof deletes only "
            "the temporary instances it created"
        )
    if state.status in DELETING_STATES:
        return False
    try:
        rds.delete_db_instance(
            DBInstanceIdentifier=identifier, SkipFinalSnapshot=True, DeleteAutomatedBackups=True
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _GONE:
            return False
        if code == "InvalidDBInstanceState":
            state = describe_instance(rds, identifier)
            if state is None or state.status in DELETING_STATES:
                return False
        raise
    return True


def is_ephemeral(state: InstanceState) -> bool:
    return state.tags.get(EPHEMERAL_TAG) == "true"


def expiry(state: InstanceState) -> datetime | None:
    raw = state.tags.get(EXPIRES_TAG)
    if not raw:
        return None
    try:
        return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def master_credentials(secrets_client: Any, secret_arn: str) -> tuple[str, str]:
    """(username, password) from the RDS-managed secret. Never logged."""
    value = secrets_client.get_secret_value(SecretId=secret_arn)["SecretString"]
    data = json.loads(value)
    return str(data["username"]), str(data["password"])


def master_target(secrets_client: Any, state: InstanceState) -> Target:
    """The maintenance database of an available instance, as its RDS-managed master user,
    over TLS (the password only in the target, from Secrets Manager)."""
    if not state.secret_arn:
        raise BackproofError(f"RDS instance {state.identifier} has no managed master secret")
    user, password = master_credentials(secrets_client, state.secret_arn)
    assert state.host and state.port
    return Target.from_params(
        host=state.host,
        port=state.port,
        user=user,
        dbname="postgres",
        password=password,
        sslmode="require",
    )


class RdsInstance(Instance):
    """create -> wait -> describe -> (restore) -> delete, for the CLI and the container task."""

    kind = "rds"

    def __init__(
        self,
        *,
        major: int,
        settings: RdsSettings | None = None,
        backup_id: str | None = None,
        rds_client: Any = None,
        secrets_client: Any = None,
        timeout_s: int = AVAILABLE_TIMEOUT_S,
        poll_s: int = 30,
        **_ignored: Any,
    ) -> None:
        if settings is None:
            raise BadInput("an RDS verification needs RDS settings (subnet group, security groups)")
        self.major = major
        self.settings = settings.validate()
        self.backup_id = backup_id
        self.rds = rds_client or boto3.client("rds", region_name=settings.region)
        self.secrets = secrets_client or boto3.client("secretsmanager", region_name=settings.region)
        self.timeout_s, self.poll_s = timeout_s, poll_s
        self.identifier: str | None = None
        self.state: InstanceState | None = None
        self.seconds_to_available: float | None = None

    def provision(self) -> Target:
        started = time.monotonic()
        self.identifier = create_instance(
            self.rds, major=self.major, settings=self.settings, backup_id=self.backup_id
        )
        self.state = wait_available(self.rds, self.identifier, self.timeout_s, self.poll_s)
        self.seconds_to_available = round(time.monotonic() - started, 1)
        return master_target(self.secrets, self.state)

    def teardown(self) -> None:
        if self.identifier:
            delete_instance(self.rds, self.identifier, deployment=self.settings.deployment)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "identifier": self.identifier,
            "requested_major": self.major,
            "server_version": self.state.engine_version if self.state else None,
            "instance_class": self.settings.instance_class,
            "seconds_to_available": self.seconds_to_available,
            "restore_as": "rds-master",  # RDS has no superuser: always its master user
        }
