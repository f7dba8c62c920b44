"""Temporary instances restored from RDS's own backups: a source instance at a point in time
(restore_db_instance_to_point_in_time) or one of its DB snapshots, automated or manual
(restore_db_instance_from_db_snapshot).

The rules of instances/rds.py hold: named with the prefix, private (not publicly accessible, in
the given subnet group and security groups), no automated backups, no deletion protection, the
master password replaced by one RDS manages in Secrets Manager (the source's is never needed),
tagged ephemeral with an expiry and the deployment, and deleted without a final snapshot by the
same `delete_instance` with its refusal. Encryption: a restore keeps its source's storage
encryption and cannot add it, so an unencrypted source or snapshot is refused before anything
is created.

`plan_point_in_time` / `plan_snapshot` read RDS only and say what would be restored (a
`WayBack`); `restore_way_back` starts the restore; `RestoredInstance` does restore, wait,
credentials and deletion for the command line.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

from ..contract import RESTORED_FROM_TAG
from ..errors import BackupNotFound, BadInput, JobFailed
from ..pg.target import Target
from .base import Instance
from .rds import (
    AVAILABLE_TIMEOUT_S,
    RdsSettings,
    delete_instance,
    ephemeral_tags,
    master_target,
    new_identifier,
    wait_available,
)

POINT_IN_TIME, SNAPSHOT = "point-in-time", "snapshot"
WAYS = (POINT_IN_TIME, SNAPSHOT)
_NOT_FOUND = ("DBInstanceNotFound", "DBInstanceNotFoundFault")
_SNAPSHOT_NOT_FOUND = ("DBSnapshotNotFound", "DBSnapshotNotFoundFault")


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 time with its zone (`2026-11-21T04:00:00Z`), or None for `latest`."""
    if text.strip().lower() == "latest":
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadInput(
            f"time {text!r} is not an ISO 8601 time like 2026-11-21T04:00:00Z (or 'latest')"
        ) from exc
    if when.tzinfo is None:
        raise BadInput(f"time {text!r} has no time zone: add Z for UTC")
    return when.astimezone(UTC)


def _utc(value: Any) -> datetime | None:
    return value.astimezone(UTC) if isinstance(value, datetime) else None


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class WayBack:
    """One of RDS's own ways back, resolved: what a restored instance will hold."""

    kind: str  # POINT_IN_TIME | SNAPSHOT
    source_instance: str
    at: datetime  # the moment the restored instance holds (restore time, snapshot time)
    engine_version: str
    snapshot_id: str | None = None
    snapshot_type: str | None = None  # automated | manual
    latest: bool = False  # the latest restorable time when it was planned

    @property
    def major(self) -> int:
        """The engine's major version (0 when unknown)."""
        head = self.engine_version.split(".", 1)[0]
        return int(head) if head.isdigit() else 0

    @property
    def label(self) -> str:
        if self.kind == SNAPSHOT:
            return f"snapshot {self.snapshot_id}"
        return f"point-in-time {self.source_instance} {_iso(self.at)}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # To the microsecond: the nearest logical backup may be a fraction of a second older.
        data["at"] = self.at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WayBack:
        kind = str(data.get("kind"))
        if kind not in WAYS:
            raise BadInput(f"way back kind must be one of {', '.join(WAYS)}, got {kind!r}")
        at = parse_time(str(data.get("at") or ""))
        if at is None:
            raise BadInput("a resolved way back needs its time, not 'latest'")
        return cls(
            kind=kind,
            source_instance=str(data["source_instance"]),
            at=at,
            engine_version=str(data["engine_version"]),
            snapshot_id=data.get("snapshot_id"),
            snapshot_type=data.get("snapshot_type"),
            latest=bool(data.get("latest")),
        )


def _source(rds: Any, identifier: str) -> dict[str, Any]:
    try:
        return dict(rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
            raise BadInput(
                f"RDS instance {identifier!r} does not exist in this account and region"
            ) from exc
        raise


def _require_postgres_encrypted(what: str, engine: str, encrypted: bool) -> None:
    if engine != "postgres":
        raise BadInput(f"{what} runs {engine!r}, not RDS for PostgreSQL")
    if not encrypted:
        raise BadInput(
            f"{what} is not encrypted: a restore of it would not be either (RDS keeps the "
            "source's storage encryption), and temporary instances are always encrypted"
        )


def earliest_restorable(rds: Any, identifier: str) -> datetime | None:
    """The start of the instance's restore window, where RDS reports one."""
    try:
        found = rds.describe_db_instance_automated_backups(DBInstanceIdentifier=identifier)
    except ClientError:
        return None
    for backup in found.get("DBInstanceAutomatedBackups", []):
        earliest = _utc((backup.get("RestoreWindow") or {}).get("EarliestTime"))
        if earliest is not None:
            return earliest
    return None


def plan_point_in_time(rds: Any, source_instance: str, when: datetime | None) -> WayBack:
    """The source at `when` (None: its latest restorable time, read now); BadInput when the
    source cannot be restored there. Reads RDS only."""
    db = _source(rds, source_instance)
    what = f"RDS instance {source_instance!r}"
    _require_postgres_encrypted(what, str(db.get("Engine")), bool(db.get("StorageEncrypted")))
    if not db.get("BackupRetentionPeriod"):
        raise BadInput(f"{what} keeps no automated backups: it has no point-in-time restore")
    latest = _utc(db.get("LatestRestorableTime"))
    if latest is None:
        raise BadInput(f"{what} has no restorable time yet (its first backup is not done)")
    if when is not None and when > latest:
        raise BadInput(
            f"{_iso(when)} is after {what}'s latest restorable time {_iso(latest)}; use "
            "'latest' or an earlier time"
        )
    earliest = earliest_restorable(rds, source_instance)
    if when is not None and earliest is not None and when < earliest:
        raise BadInput(
            f"{_iso(when)} is before {what}'s earliest restorable time {_iso(earliest)} "
            "(outside its backup retention)"
        )
    return WayBack(
        kind=POINT_IN_TIME,
        source_instance=source_instance,
        at=when or latest,
        engine_version=str(db.get("EngineVersion", "")),
        latest=when is None,
    )


def _snapshot_way(source_instance: str, snap: dict[str, Any]) -> WayBack:
    ident = str(snap["DBSnapshotIdentifier"])
    if snap.get("DBInstanceIdentifier") != source_instance:
        raise BadInput(f"snapshot {ident!r} is not a snapshot of {source_instance!r}")
    if snap.get("Status") != "available":
        raise BadInput(f"snapshot {ident!r} is {snap.get('Status')!r}, not available")
    what = f"snapshot {ident!r}"
    _require_postgres_encrypted(what, str(snap.get("Engine")), bool(snap.get("Encrypted")))
    created = _utc(snap.get("SnapshotCreateTime"))
    if created is None:
        raise BadInput(f"{what} has no creation time yet")
    return WayBack(
        kind=SNAPSHOT,
        source_instance=source_instance,
        at=created,
        engine_version=str(snap.get("EngineVersion", "")),
        snapshot_id=ident,
        snapshot_type=str(snap.get("SnapshotType", "")),
    )


def plan_snapshot(rds: Any, source_instance: str, snapshot_id: str | None = None) -> WayBack:
    """The snapshot `snapshot_id` of the source, or its newest available one (automated or
    manual); BadInput when there is none that can be restored. Reads RDS only."""
    if snapshot_id:
        try:
            found = rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot_id)["DBSnapshots"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _SNAPSHOT_NOT_FOUND:
                found = []
            else:
                raise
        if not found:
            raise BackupNotFound(f"no RDS snapshot {snapshot_id!r} in this account and region")
        return _snapshot_way(source_instance, found[0])
    snapshots = [
        s
        for page in rds.get_paginator("describe_db_snapshots").paginate(
            DBInstanceIdentifier=source_instance
        )
        for s in page.get("DBSnapshots", [])
        if s.get("Status") == "available" and s.get("SnapshotCreateTime")
    ]
    if not snapshots:
        raise BackupNotFound(f"RDS instance {source_instance!r} has no available snapshot")
    newest = max(snapshots, key=lambda s: _utc(s["SnapshotCreateTime"]) or datetime.min)
    return _snapshot_way(source_instance, newest)


def restore_way_back(
    rds: Any,
    way: WayBack,
    *,
    settings: RdsSettings,
    identifier: str | None = None,
    now: datetime | None = None,
) -> str:
    """Start restoring `way` into a new temporary instance; its identifier, without waiting."""
    settings.validate()
    identifier = identifier or new_identifier()
    tags = [*ephemeral_tags(settings, now), {"Key": RESTORED_FROM_TAG, "Value": way.label}]
    args: dict[str, Any] = {
        "DBInstanceClass": settings.instance_class,
        "DBSubnetGroupName": settings.subnet_group,
        "PubliclyAccessible": False,
        "MultiAZ": False,
        "AutoMinorVersionUpgrade": False,
        "BackupRetentionPeriod": 0,
        "DeletionProtection": False,
        "CopyTagsToSnapshot": False,
        "ManageMasterUserPassword": True,
        "Tags": tags,
    }
    if settings.security_group_ids:
        args["VpcSecurityGroupIds"] = list(settings.security_group_ids)
    try:
        if way.kind == SNAPSHOT:
            rds.restore_db_instance_from_db_snapshot(
                DBInstanceIdentifier=identifier, DBSnapshotIdentifier=way.snapshot_id, **args
            )
        else:
            rds.restore_db_instance_to_point_in_time(
                SourceDBInstanceIdentifier=way.source_instance,
                TargetDBInstanceIdentifier=identifier,
                RestoreTime=way.at,
                **args,
            )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise JobFailed(
            f"cannot restore {way.label} into {identifier}: {error.get('Code', '')}: "
            f"{error.get('Message', exc)}"
        ) from exc
    return identifier


class RestoredInstance(Instance):
    """restore -> wait -> credentials -> (checks) -> delete, for the command line."""

    kind = "rds-restored"

    def __init__(
        self,
        *,
        way: WayBack,
        settings: RdsSettings,
        rds_client: Any = None,
        secrets_client: Any = None,
        timeout_s: int = AVAILABLE_TIMEOUT_S,
        poll_s: int = 30,
    ) -> None:
        self.way = way
        self.settings = settings.validate()
        self.rds = rds_client or boto3.client("rds", region_name=settings.region)
        self.secrets = secrets_client or boto3.client("secretsmanager", region_name=settings.region)
        self.timeout_s, self.poll_s = timeout_s, poll_s
        self.identifier: str | None = None
        self.engine_version: str | None = None
        self.seconds_to_available: float | None = None

    def provision(self) -> Target:
        started = time.monotonic()
        # Named before the call, so a restore that half-started is still deleted by name.
        self.identifier = new_identifier()
        restore_way_back(self.rds, self.way, settings=self.settings, identifier=self.identifier)
        state = wait_available(self.rds, self.identifier, self.timeout_s, self.poll_s)
        self.seconds_to_available = round(time.monotonic() - started, 1)
        self.engine_version = state.engine_version
        return master_target(self.secrets, state)

    def teardown(self) -> None:
        if self.identifier:
            delete_instance(self.rds, self.identifier, deployment=self.settings.deployment)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "identifier": self.identifier,
            "restored_from": self.way.label,
            "server_version": self.engine_version,
            "instance_class": self.settings.instance_class,
            "seconds_to_available": self.seconds_to_available,
        }
