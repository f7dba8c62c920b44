"""Temporary RDS instances: the calls create, wait, describe and delete make (moto)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from backproof.contract import DEPLOYMENT_TAG, EPHEMERAL_TAG, EXPIRES_TAG, INSTANCE_PREFIX
from backproof.errors import BadInput, DeletionRefused
from backproof.instances import open_instance
from backproof.instances.janitor import delete_expired
from backproof.instances.rds import (
    RdsSettings,
    create_instance,
    delete_instance,
    describe_instance,
    wait_available,
)

SETTINGS = RdsSettings(
    subnet_group="private", security_group_ids=["sg-123"], kms_key_id=None, ttl=timedelta(hours=2)
)


def test_created_instance_is_private_encrypted_unbacked_tagged_and_managed(rds: Any) -> None:
    now = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
    ident = create_instance(
        rds, major=15, settings=SETTINGS, backup_id="20261121T050000Z-abcdef", now=now
    )
    db = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
    assert db["Engine"] == "postgres" and db["EngineVersion"].startswith("15")
    assert db["PubliclyAccessible"] is False
    assert db["StorageEncrypted"] is True
    assert db["BackupRetentionPeriod"] == 0
    assert db["DeletionProtection"] is False
    assert db["DBSubnetGroup"]["DBSubnetGroupName"] == "private"
    assert db["MasterUserSecret"]["SecretArn"]
    tags = {t["Key"]: t["Value"] for t in db["TagList"]}
    assert tags[EPHEMERAL_TAG] == "true" and tags[EXPIRES_TAG] == "2026-11-21T07:00:00Z"
    assert tags[DEPLOYMENT_TAG] == "cli"
    assert ident.startswith(INSTANCE_PREFIX) and len(ident) <= 63


def test_wait_describe_and_delete_without_final_snapshot(rds: Any) -> None:
    ident = create_instance(rds, major=16, settings=SETTINGS)
    state = wait_available(rds, ident, timeout_s=10, delay_s=1)
    assert state.available and state.host and state.port and state.secret_arn
    assert delete_instance(rds, ident) is True
    assert describe_instance(rds, ident) is None
    assert not rds.describe_db_snapshots()["DBSnapshots"]  # no final snapshot
    assert delete_instance(rds, ident) is False  # already gone: fine


def production_like(rds: Any, identifier: str, tags: dict[str, str] | None = None) -> None:
    rds.create_db_instance(
        DBInstanceIdentifier=identifier,
        Engine="postgres",
        DBInstanceClass="db.t4g.medium",
        MasterUsername="x",
        MasterUserPassword="not-a-real-one",
        AllocatedStorage=20,
        Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
    )


def test_janitor_deletes_only_its_own_expired_ephemeral_instances(rds: Any) -> None:
    now = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
    ours = replace(SETTINGS, deployment="prod")
    old = create_instance(rds, major=15, settings=ours, now=now - timedelta(hours=3))
    fresh = create_instance(rds, major=15, settings=ours, now=now)
    # An expired instance of another deployment (or of the command line) is not ours to sweep
    other = create_instance(rds, major=15, settings=SETTINGS, now=now - timedelta(hours=3))
    production_like(rds, "production")
    sweep = delete_expired(rds, "prod", now)
    assert sweep.deleted == [old] and sweep.skipped == []
    left = {d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]}
    assert left == {fresh, other, "production"}


def test_janitor_skips_what_it_cannot_delete_and_sweeps_the_rest(rds: Any) -> None:
    # Given two expired instances of the deployment, one of which RDS refuses to delete
    now = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
    ours = replace(SETTINGS, deployment="prod")
    stuck = create_instance(rds, major=15, settings=ours, now=now - timedelta(hours=3))
    rds.modify_db_instance(DBInstanceIdentifier=stuck, DeletionProtection=True)
    leaked = create_instance(rds, major=15, settings=ours, now=now - timedelta(hours=3))
    # When the janitor sweeps
    sweep = delete_expired(rds, "prod", now)
    # Then the one it could delete is gone, and the other is reported with the reason
    assert sweep.deleted == [leaked]
    assert [s["identifier"] for s in sweep.skipped] == [stuck]
    assert sweep.skipped[0]["reason"]


@pytest.mark.parametrize(
    ("identifier", "tags", "reason"),
    [
        ("orders-prod", {}, "does not start with"),
        ("orders-prod", {EPHEMERAL_TAG: "true", DEPLOYMENT_TAG: "prod"}, "does not start with"),
        (f"{INSTANCE_PREFIX}lookalike", {}, "is not tagged"),
        (f"{INSTANCE_PREFIX}elsewhere", {EPHEMERAL_TAG: "true", DEPLOYMENT_TAG: "dev"}, "dev"),
    ],
)
def test_the_engine_refuses_to_delete_an_instance_it_did_not_create(
    rds: Any, identifier: str, tags: dict[str, str], reason: str
) -> None:
    # Given a database backproof did not create as a throwaway (whatever IAM would allow)
    production_like(rds, identifier, tags)
    # When the engine is asked to delete it, Then it refuses, naming why, and it still exists
    with pytest.raises(DeletionRefused, match=reason):
        delete_instance(rds, identifier, deployment="prod")
    assert describe_instance(rds, identifier) is not None


def test_rds_instance_tears_down_when_the_restore_fails(rds: Any) -> None:
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    instance = open_instance(
        "rds",
        major=15,
        settings=SETTINGS,
        rds_client=rds,
        secrets_client=secrets,
        poll_s=1,
        timeout_s=10,
    )
    with pytest.raises(RuntimeError), instance as target:
        assert target.user and target.password and target.sslmode == "require"
        assert instance.identifier is not None
        raise RuntimeError("restore blew up")
    assert describe_instance(rds, instance.identifier) is None
    assert instance.describe()["kind"] == "rds"


def test_settings_without_subnet_group_are_bad_input() -> None:
    with pytest.raises(BadInput):
        RdsSettings(subnet_group="").validate()
