"""Temporary instances restored from RDS's own backups: the calls a point-in-time and a
snapshot restore make (moto), and deletion on every way out.

What moto 5.2 does not do, so these tests check the request instead of moto's result: it
ignores falsy restore overrides (PubliclyAccessible=False, BackupRetentionPeriod=0,
DeletionProtection=False are dropped and the source's values copied), accepts any RestoreTime
(no restore window; describe_db_instance_automated_backups has no RestoreWindow), reports
LatestRestorableTime as the time of the call, and makes every instance available at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from backproof.contract import (
    DEPLOYMENT_TAG,
    EPHEMERAL_TAG,
    EXPIRES_TAG,
    INSTANCE_PREFIX,
    RESTORED_FROM_TAG,
)
from backproof.errors import BackupNotFound, BadInput
from backproof.instances import native
from backproof.instances.janitor import delete_expired
from backproof.instances.native import (
    POINT_IN_TIME,
    SNAPSHOT,
    RestoredInstance,
    WayBack,
    parse_time,
    plan_point_in_time,
    plan_snapshot,
    restore_way_back,
)
from backproof.instances.rds import RdsSettings, describe_instance
from backproof.jobs.native import WayBackRequest, verify_way_back
from backproof.store import open_store

SETTINGS = RdsSettings(
    subnet_group="private", security_group_ids=["sg-0a1b2c3d"], ttl=timedelta(hours=2)
)
RESTORE_CALLS = ("RestoreDBInstanceToPointInTime", "RestoreDBInstanceFromDBSnapshot")


class Calls:
    """Every RDS request the engine makes, with its parameters, in order."""

    def __init__(self, client: Any) -> None:
        self.made: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("provide-client-params.rds.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.made.append((model.name, dict(params)))

    def names(self) -> list[str]:
        return [name for name, _ in self.made]

    def restores(self) -> list[tuple[str, dict[str, Any]]]:
        return [(n, p) for n, p in self.made if n in RESTORE_CALLS]


def source(rds: Any, name: str = "orders-prod", **overrides: Any) -> dict[str, Any]:
    """A production instance backproof did not create (automated backups on, encrypted)."""
    args = {
        "DBInstanceIdentifier": name,
        "Engine": "postgres",
        "EngineVersion": "15.4",
        "DBInstanceClass": "db.r6g.large",
        "MasterUsername": "app",
        "MasterUserPassword": "not-a-real-one",
        "AllocatedStorage": 100,
        "StorageEncrypted": True,
        "BackupRetentionPeriod": 7,
        **overrides,
    }
    return dict(rds.create_db_instance(**args)["DBInstance"])


def tags_of(rds: Any, identifier: str) -> dict[str, str]:
    db = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    return {t["Key"]: t["Value"] for t in db["TagList"]}


def test_parse_time_wants_a_zone_or_latest() -> None:
    assert parse_time("latest") is None
    assert parse_time("2026-11-21T04:00:00Z") == datetime(2026, 11, 21, 4, tzinfo=UTC)
    assert parse_time("2026-11-21T05:00:00+01:00") == datetime(2026, 11, 21, 4, tzinfo=UTC)
    for bad in ("2026-11-21T04:00:00", "yesterday"):
        with pytest.raises(BadInput):
            parse_time(bad)


def test_point_in_time_restore_is_private_unbacked_tagged_and_managed(rds: Any) -> None:
    source(rds)
    calls = Calls(rds)
    # When the latest restorable time is planned and restored
    way = plan_point_in_time(rds, "orders-prod", None)
    latest = rds.describe_db_instances(DBInstanceIdentifier="orders-prod")["DBInstances"][0][
        "LatestRestorableTime"
    ]
    # (moto reports the time of the call as the latest restorable time)
    assert way.kind == POINT_IN_TIME and way.latest
    assert timedelta(0) <= latest.astimezone(UTC) - way.at < timedelta(minutes=1)
    assert way.major == 15
    now = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
    ident = restore_way_back(rds, way, settings=SETTINGS, now=now)
    # Then planning only read RDS, and the one restore call asked for the temporary rules
    assert calls.names()[:2] == ["DescribeDBInstances", "DescribeDBInstanceAutomatedBackups"]
    ((name, params),) = calls.restores()
    assert name == "RestoreDBInstanceToPointInTime"
    assert params["SourceDBInstanceIdentifier"] == "orders-prod"
    assert params["TargetDBInstanceIdentifier"] == ident and ident.startswith(INSTANCE_PREFIX)
    assert params["RestoreTime"] == way.at and "UseLatestRestorableTime" not in params
    assert params["PubliclyAccessible"] is False
    assert params["BackupRetentionPeriod"] == 0
    assert params["DeletionProtection"] is False and params["MultiAZ"] is False
    assert params["ManageMasterUserPassword"] is True
    assert params["DBSubnetGroupName"] == "private"
    assert params["VpcSecurityGroupIds"] == ["sg-0a1b2c3d"]
    assert {t["Key"]: t["Value"] for t in params["Tags"]} == {
        EPHEMERAL_TAG: "true",
        EXPIRES_TAG: "2026-11-21T07:00:00Z",
        DEPLOYMENT_TAG: "cli",
        RESTORED_FROM_TAG: way.label,
    }
    # and what moto made of it is encrypted (the source's encryption), tagged and managed
    db = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
    assert db["StorageEncrypted"] is True and db["MasterUserSecret"]["SecretArn"]
    assert tags_of(rds, ident)[EPHEMERAL_TAG] == "true"


@pytest.mark.parametrize(
    ("overrides", "when", "message"),
    [
        ({"StorageEncrypted": False}, None, "not encrypted"),
        ({"BackupRetentionPeriod": 0}, None, "no automated backups"),
        ({}, "future", "after"),
    ],
)
def test_a_point_in_time_that_cannot_be_restored_is_refused_before_any_restore(
    rds: Any, overrides: dict[str, Any], when: str | None, message: str
) -> None:
    source(rds, **overrides)
    calls = Calls(rds)
    at = datetime.now(UTC) + timedelta(days=1) if when == "future" else None
    with pytest.raises(BadInput, match=message):
        plan_point_in_time(rds, "orders-prod", at)
    assert calls.restores() == []
    assert [d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]] == [
        "orders-prod"
    ]


def test_an_unknown_source_is_bad_input(rds: Any) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        plan_point_in_time(rds, "nope", None)
    with pytest.raises(BackupNotFound):
        plan_snapshot(rds, "nope")


def test_the_newest_snapshot_automated_or_manual_is_restored(rds: Any) -> None:
    source(rds)  # moto takes an automated snapshot at creation
    rds.create_db_snapshot(DBInstanceIdentifier="orders-prod", DBSnapshotIdentifier="before-v42")
    source(rds, "billing-prod")
    rds.create_db_snapshot(DBInstanceIdentifier="billing-prod", DBSnapshotIdentifier="billing-1")
    calls = Calls(rds)
    way = plan_snapshot(rds, "orders-prod")
    assert (way.kind, way.snapshot_id, way.snapshot_type) == (SNAPSHOT, "before-v42", "manual")
    (auto,) = rds.describe_db_snapshots(
        DBInstanceIdentifier="orders-prod", SnapshotType="automated"
    )["DBSnapshots"]
    automated = plan_snapshot(rds, "orders-prod", auto["DBSnapshotIdentifier"])
    ident = restore_way_back(rds, way, settings=SETTINGS)
    ((name, params),) = calls.restores()
    assert name == "RestoreDBInstanceFromDBSnapshot"
    assert (
        params["DBSnapshotIdentifier"] == "before-v42" and params["DBInstanceIdentifier"] == ident
    )
    assert params["PubliclyAccessible"] is False and params["BackupRetentionPeriod"] == 0
    assert params["ManageMasterUserPassword"] is True
    assert tags_of(rds, ident)[RESTORED_FROM_TAG] == "snapshot before-v42"
    assert automated.snapshot_type == "automated"


def test_a_snapshot_of_another_instance_or_unencrypted_is_refused(rds: Any) -> None:
    source(rds)
    source(rds, "billing-prod")
    rds.create_db_snapshot(DBInstanceIdentifier="billing-prod", DBSnapshotIdentifier="billing-1")
    with pytest.raises(BadInput, match="not a snapshot of 'orders-prod'"):
        plan_snapshot(rds, "orders-prod", "billing-1")
    with pytest.raises(BackupNotFound):
        plan_snapshot(rds, "orders-prod", "no-such-snapshot")
    source(rds, "plain", StorageEncrypted=False)
    rds.create_db_snapshot(DBInstanceIdentifier="plain", DBSnapshotIdentifier="plain-1")
    with pytest.raises(BadInput, match="not encrypted"):
        plan_snapshot(rds, "plain", "plain-1")


def test_the_restored_instance_is_deleted_by_the_engine_and_swept_by_the_janitor(
    rds: Any,
) -> None:
    source(rds)
    way = plan_point_in_time(rds, "orders-prod", None)
    now = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
    ours = RdsSettings(subnet_group="private", deployment="prod", ttl=timedelta(hours=2))
    old = restore_way_back(rds, way, settings=ours, now=now - timedelta(hours=3))
    fresh = restore_way_back(rds, way, settings=ours, now=now)
    assert delete_expired(rds, "prod", now).deleted == [old]
    left = {d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]}
    assert left == {"orders-prod", fresh}  # the source is never the janitor's


def restored(rds: Any, way: WayBack) -> RestoredInstance:
    return RestoredInstance(
        way=way,
        settings=SETTINGS,
        rds_client=rds,
        secrets_client=boto3.client("secretsmanager", region_name="us-east-1"),
        poll_s=1,
        timeout_s=10,
    )


def instances(rds: Any) -> set[str]:
    return {d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]}


def test_a_failure_after_the_restore_deletes_the_instance(rds: Any) -> None:
    source(rds)
    instance = restored(rds, plan_point_in_time(rds, "orders-prod", None))
    with pytest.raises(RuntimeError), instance as target:
        # the master secret RDS made for the restored instance (the source's is never read)
        assert target.user and target.password and target.sslmode == "require"
        raise RuntimeError("checks blew up")
    assert instance.identifier and describe_instance(rds, instance.identifier) is None
    assert instances(rds) == {"orders-prod"}


def test_an_instance_that_never_becomes_available_is_deleted(
    rds: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    source(rds)
    instance = restored(rds, plan_point_in_time(rds, "orders-prod", None))

    def never(*_args: Any, **_kwargs: Any) -> Any:
        raise native.JobFailed("did not become available")

    monkeypatch.setattr(native, "wait_available", never)
    with pytest.raises(native.JobFailed), instance:
        pass
    assert instances(rds) == {"orders-prod"}


def test_a_restore_that_rds_refuses_leaves_nothing(rds: Any) -> None:
    source(rds)
    way = plan_point_in_time(rds, "orders-prod", None)
    rds.delete_db_instance(DBInstanceIdentifier="orders-prod", SkipFinalSnapshot=True)
    instance = restored(rds, way)
    with pytest.raises(native.JobFailed, match="cannot restore"), instance:
        pass
    assert instances(rds) == set()


def test_a_verification_whose_instance_cannot_be_reached_records_it_and_deletes_it(
    rds: Any,
) -> None:
    # Given moto's restored instance (its endpoint leads nowhere) and a store with no backups
    source(rds)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="bp-native")
    store = open_store("s3://bp-native")
    instance = restored(rds, plan_snapshot(rds, "orders-prod"))
    # When the snapshot is verified
    report = verify_way_back(
        store,
        WayBackRequest(database="orders", way=instance.way, dbname="orders"),
        instance=instance,
    )
    # Then the run could not verify (nothing is said of the snapshot), the instance is gone
    assert report.verdict == "could-not-verify" and report.error
    assert instances(rds) == {"orders-prod"}
    # and the evidence is filed under snapshots/, apart from every logical backup
    assert report.report_key and report.report_key.startswith("snapshots/orders/")
    assert store.list_backups() == []
