"""Each Lambda handler in-process with its events/ sample, against moto and real PostgreSQL."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import boto3
import pytest

from backproof.contract import EXECUTION_TAG
from backproof.errors import DeletionRefused
from backproof.instances.rds import RdsSettings, create_instance
from backproof.store import open_store
from infra.config import load
from infra.monitoring import JANITOR_SERVICE, RECORD_SERVICE
from infra.schedules import backup_payload
from tests.conftest import SourceDatabase, take_backup
from tests.infra.conftest import cdk_context

from .conftest import (
    SLOTS_KEY,
    SLOTS_TABLE,
    LambdaContext,
    World,
    event,
    load_handlers,
)
from .deployment import patch_moto_eni

CTX = LambdaContext()


def emf(output: str) -> list[dict[str, Any]]:
    """EMF documents Powertools printed, with single values unwrapped."""
    docs = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            doc = json.loads(line)
            docs.append(
                {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in doc.items()}
            )
    return docs


def as_function(
    service: str, world: World, monkeypatch: pytest.MonkeyPatch
) -> dict[str, ModuleType]:
    """Cold-start the handlers as the named function (service name as the stack sets it)."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", service)
    return load_handlers(world, monkeypatch)


def test_integrity_accepts_a_sound_backup(
    handlers: dict[str, ModuleType], world: World, orders_db: SourceDatabase
) -> None:
    backup = take_backup(orders_db, world, name="orders", tier="daily")[1].summary()
    result = handlers["integrity"].handler(event("handlers/integrity"), CTX)
    assert result["backup_id"] == backup["backup_id"]
    assert result["server_major"] == 15
    assert result["sha256_checked"] is True
    assert result["tier"] == "daily"


def test_integrity_refuses_a_tampered_archive(
    handlers: dict[str, ModuleType], world: World, orders_db: SourceDatabase
) -> None:
    # Given a backup whose archive had one byte flipped after upload
    backup = take_backup(orders_db, world, name="orders", tier="daily")[1].summary()
    s3 = boto3.client("s3")
    body = bytearray(s3.get_object(Bucket=world.bucket, Key=backup["archive_key"])["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3.put_object(
        Bucket=world.bucket,
        Key=backup["archive_key"],
        Body=bytes(body),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=world.key_arn,
    )
    # Then the integrity step fails, naming the checksum
    with pytest.raises(Exception, match=r"integrity\.sha256") as caught:
        handlers["integrity"].handler(event("handlers/integrity"), CTX)
    assert type(caught.value).__name__ == "IntegrityFailure"


def test_integrity_names_a_missing_field(handlers: dict[str, ModuleType]) -> None:
    with pytest.raises(Exception, match="event field 'database' is missing"):
        handlers["integrity"].handler({"backup_id": "latest"}, CTX)


def test_instance_lifecycle_handlers(handlers: dict[str, ModuleType], world: World) -> None:
    # Given the sample create event, pointed at this world's security group
    created = handlers["create_instance"].handler(
        {**event("handlers/create_instance"), "security_group_id": world.security_group_id}, CTX
    )
    identifier = created["instance_id"]
    rds = boto3.client("rds")
    db = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    tags = {t["Key"]: t["Value"] for t in db["TagList"]}
    # Then the instance is private, encrypted, without backups, and tagged for the janitor
    assert tags["backproof:ephemeral"] == "true"
    expires = datetime.strptime(tags["backproof:expires-at"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    )
    assert timedelta(hours=25) < expires - datetime.now(UTC) < timedelta(hours=27)
    assert db["PubliclyAccessible"] is False and db["StorageEncrypted"] is True
    assert db["BackupRetentionPeriod"] == 0
    assert db["DBInstanceClass"] == "db.t4g.medium"

    described = handlers["describe_instance"].handler(event("handlers/describe_instance"), CTX)
    assert described["status"] == "available" and described["port"] == 5432

    deleted = handlers["delete_instance"].handler(event("handlers/delete_instance"), CTX)
    assert deleted == {"instance_id": identifier, "deletion_started": True}
    # Deleting again is not an error: the workflow may retry
    again = handlers["delete_instance"].handler(event("handlers/delete_instance"), CTX)
    assert again["deletion_started"] is False
    gone = handlers["describe_instance"].handler(event("handlers/describe_instance"), CTX)
    assert gone["status"] == "not-found"


def test_an_instance_handed_over_to_the_operator_can_no_longer_be_deleted(
    handlers: dict[str, ModuleType], world: World
) -> None:
    # Given a restored instance handed over to the operator (its ephemeral tags removed)
    handlers["create_instance"].handler(
        {**event("handlers/create_instance"), "security_group_id": world.security_group_id}, CTX
    )
    kept = handlers["keep_instance"].handler(event("handlers/keep_instance"), CTX)
    assert kept["kept"] is True
    tags = boto3.client("rds").list_tags_for_resource(ResourceName=kept["instance_arn"])
    assert "backproof:ephemeral" not in {t["Key"] for t in tags["TagList"]}
    # When anything asks backproof to delete it, Then the engine refuses: it is the operator's
    with pytest.raises(DeletionRefused, match="not tagged backproof:ephemeral"):
        handlers["delete_instance"].handler(event("handlers/delete_instance"), CTX)


def test_retention_spares_a_backup_being_restored_and_the_janitor_frees_dead_locks(
    handlers: dict[str, ModuleType], world: World, orders_db: SourceDatabase
) -> None:
    # Given two daily backups, a policy keeping one, and the older one being restored right now
    ids = [
        take_backup(orders_db, world, name="orders", tier="daily")[1].summary()["backup_id"]
        for _ in range(2)
    ]
    lock = {
        "pk": {"S": "lock#restore#orders#orders-staging"},
        "kind": {"S": "lock"},
        "execution": {"S": "arn:aws:states:us-east-1:123456789012:execution:restore:gone"},
        "database": {"S": "orders"},
        "backup_id": {"S": ids[0]},
    }
    boto3.client("dynamodb").put_item(TableName=SLOTS_TABLE, Item=lock)
    sample = event("handlers/retention")
    sample["retention"]["daily"] = 1
    # When retention runs, Then the backup under restore is kept, with the reason
    plan = handlers["retention"].handler(sample, CTX)
    assert plan["deleted"] == []
    (decision,) = [d for d in plan["decisions"] if d["backup_id"] == ids[0]]
    assert decision["reason"] == "being verified or restored right now"
    # And once the janitor finds the holding execution gone, the lock is freed
    result = handlers["janitor"].handler(event("handlers/janitor"), CTX)
    assert result["released_locks"] == ["lock#restore#orders#orders-staging"]
    assert handlers["retention"].handler(sample, CTX)["deleted"] == [ids[0]]


def test_retention_keeps_the_configured_number(
    handlers: dict[str, ModuleType],
    world: World,
    orders_db: SourceDatabase,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given three daily backups and a policy keeping two
    ids = [
        take_backup(orders_db, world, name="orders", tier="daily")[1].summary()["backup_id"]
        for _ in range(3)
    ]
    sample = event("handlers/retention")
    sample["retention"]["daily"] = 2
    plan = handlers["retention"].handler(sample, CTX)
    # Then only the oldest is deleted
    assert plan["deleted"] == [ids[0]]

    left = [b.backup_id for b in open_store(world.store_url).list_backups("orders")]
    assert left == ids[1:]
    (doc,) = [d for d in emf(capsys.readouterr().out) if "BackupsDeleted" in d]
    assert doc["BackupsDeleted"] == 1.0 and doc["database"] == "orders"


def test_record_publishes_backup_metrics(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    handlers = as_function(RECORD_SERVICE, world, monkeypatch)
    result = handlers["record"].handler(event("handlers/record-backup"), CTX)
    assert result["outcome"] == "succeeded"
    (doc,) = emf(capsys.readouterr().out)
    assert doc["BackupSucceeded"] == 1.0 and doc["BackupBytes"] == 104857600.0
    assert doc["database"] == "orders"
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Backproof"
    # The alarms in infra/monitoring.py look metrics up by exactly these dimensions
    assert [sorted(d) for d in directive["Dimensions"]] == [["database", "service"]]
    assert doc["service"] == RECORD_SERVICE


def test_record_counts_failed_checks(
    handlers: dict[str, ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    handlers["record"].handler(event("handlers/record-verification-failed"), CTX)
    (doc,) = emf(capsys.readouterr().out)
    assert doc["VerificationFailed"] == 1.0 and doc["CheckFailures"] == 1.0


def test_validate_restore_plans_the_samples(
    handlers: dict[str, ModuleType], world: World, orders_db: SourceDatabase
) -> None:
    backup = take_backup(orders_db, world, name="orders", tier="daily")[1].summary()
    plan = handlers["validate_restore"].handler(event("handlers/validate_restore"), CTX)
    assert plan["backup"]["backup_id"] == backup["backup_id"]
    assert plan["target"] == {
        "kind": "new_instance",
        "instance_class": None,
        "dbname": orders_db.dbname,
    }
    assert plan["dry_run"] is True
    # The console samples in events/ are accepted as they are
    for sample in ("restore-new-instance", "restore-existing-dry-run"):
        plan = handlers["validate_restore"].handler({"request": event(sample)}, CTX)
        assert plan["database"] == "orders"
    assert plan["tables"] == ["public.orders"]
    # A declared restore target is restored with its own secret, never the backup secret
    declared = load(cdk_context()["backproof"]).databases[0].restore_targets[0]
    assert plan["target"]["secret_arn"] == declared.secret_arn
    assert plan["target"]["overwrites_source"] is False


def test_a_console_restore_is_a_dry_run_unless_it_says_otherwise(
    handlers: dict[str, ModuleType], world: World, orders_db: SourceDatabase
) -> None:
    take_backup(orders_db, world, name="orders", tier="daily")
    # Given an operator's input that does not mention dry_run
    request = {k: v for k, v in event("restore-existing-dry-run").items() if k != "dry_run"}
    # When it is validated, Then the plan is a dry run: only "dry_run": false touches anything
    assert handlers["validate_restore"].handler({"request": request}, CTX)["dry_run"] is True
    explicit = {**request, "dry_run": False}
    assert handlers["validate_restore"].handler({"request": explicit}, CTX)["dry_run"] is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"target": {"kind": "existing", "database": "orders-staging", "confirm": "orders"}},
            "set target.confirm to 'orders-staging'",
        ),
        ({"target": {"kind": "existing", "database": "orders-staging"}}, "target.confirm"),
        ({"target": {"kind": "elsewhere"}}, "target.kind must be"),
        ({"tables": ["public.nope"]}, "table 'public.nope' is not in backup"),
        ({"backup_id": "yesterday"}, "is not a backup id"),
        ({"dryrun": True}, "unknown field 'dryrun'"),
        (
            # a database nobody declared as a place to restore into (here: production itself)
            {"target": {"kind": "existing", "database": "orders", "confirm": "orders"}},
            "'orders' is not a declared restore target of 'orders' \\(declared: orders-staging\\)",
        ),
    ],
)
def test_validate_restore_rejects_bad_requests(
    handlers: dict[str, ModuleType],
    world: World,
    orders_db: SourceDatabase,
    change: dict[str, Any],
    message: str,
) -> None:
    take_backup(orders_db, world, name="orders", tier="daily")[1].summary()
    request = {**event("restore-existing-dry-run"), **change}
    with pytest.raises(Exception, match=message):
        handlers["validate_restore"].handler({"request": request}, CTX)


def test_janitor_deletes_expired_instances_and_frees_stale_slots(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:

    handlers = as_function(JANITOR_SERVICE, world, monkeypatch)
    rds = boto3.client("rds")
    settings = RdsSettings(
        subnet_group="backproof-verify",
        security_group_ids=[world.security_group_id],
        deployment=world.env()["BACKPROOF_DEPLOYMENT"],
    )
    # Given one instance past its expiry and one still in use, both of this deployment
    old = create_instance(
        rds,
        major=15,
        settings=settings,
        identifier="bp-old",
        now=datetime.now(UTC) - timedelta(hours=30),
    )
    fresh = create_instance(rds, major=15, settings=settings, identifier="bp-fresh")
    # and a slot held by an execution that no longer exists
    boto3.client("dynamodb").put_item(
        TableName=SLOTS_TABLE,
        Item={
            "pk": {"S": SLOTS_KEY},
            "count": {"N": "1"},
            "gone": {"S": "arn:aws:states:us-east-1:123456789012:execution:verify:gone"},
        },
    )
    result = handlers["janitor"].handler(event("handlers/janitor"), CTX)
    assert result["deleted"] == [old] and result["deleted_count"] == 1
    assert result["skipped"] == []
    assert result["released_slots"] == ["gone"]
    remaining = [d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]]
    assert fresh in remaining and old not in remaining
    item = boto3.client("dynamodb").get_item(TableName=SLOTS_TABLE, Key={"pk": {"S": SLOTS_KEY}})[
        "Item"
    ]
    assert item["count"] == {"N": "0"} and "gone" not in item
    docs = emf(capsys.readouterr().out)
    assert any(d.get("LeakedInstancesDeleted") == 1.0 for d in docs)
    # The age of verified backups is the freshness function's now, not the janitor's
    assert not any("VerifiedBackupAgeHours" in d for d in docs)
    assert all(d["service"] == JANITOR_SERVICE for d in docs)


def test_handlers_fail_at_cold_start_naming_a_missing_variable(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BACKPROOF_KMS_KEY_ID", raising=False)
    world_env = world.env()
    del world_env["BACKPROOF_KMS_KEY_ID"]
    for name, value in world_env.items():
        monkeypatch.setenv(name, value)

    for name in [m for m in sys.modules if m.startswith("handlers")]:
        del sys.modules[name]
    with pytest.raises(Exception, match="environment variable BACKPROOF_KMS_KEY_ID is not set"):
        __import__("handlers.integrity")


def test_schedule_sample_is_what_the_schedules_send() -> None:

    assert event("backup-schedule") == backup_payload("orders", "daily")
    assert event("janitor-schedule") == {}


def test_an_ended_execution_has_its_task_stopped(
    handlers: dict[str, ModuleType], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a restore task started by an execution, and a task of another execution
    patch_moto_eni(monkeypatch)
    ecs = boto3.client("ecs")
    cluster = ecs.create_cluster(clusterName="backproof")["cluster"]["clusterArn"]
    family = ecs.register_task_definition(
        family="backproof-task",
        containerDefinitions=[{"name": "task", "image": "backproof", "memory": 512}],
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
    )["taskDefinition"]["taskDefinitionArn"]
    sample = event("handlers/stop_tasks")
    execution = sample["detail"]["executionArn"]

    def start(of: str) -> str:
        return ecs.run_task(
            cluster=cluster,
            taskDefinition=family,
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": world.subnet_ids,
                    "securityGroups": [world.security_group_id],
                }
            },
            tags=[{"key": EXECUTION_TAG, "value": of}],
        )["tasks"][0]["taskArn"]

    orphan, other = start(execution), start(execution + "-other")
    monkeypatch.setenv("BACKPROOF_CLUSTER", cluster)
    # When its execution times out (EventBridge reports the status change)
    result = handlers["stop_tasks"].handler(sample, CTX)
    # Then that task is stopped, the other execution's is not
    assert result["stopped"] == [orphan]
    tasks = ecs.describe_tasks(cluster=cluster, tasks=[orphan, other])["tasks"]
    desired = {t["taskArn"]: t["desiredStatus"] for t in tasks}
    assert desired == {orphan: "STOPPED", other: "RUNNING"}
    # And an execution that succeeded stops nothing
    succeeded = {**sample, "detail": {**sample["detail"], "status": "SUCCEEDED"}}
    assert handlers["stop_tasks"].handler(succeeded, CTX)["stopped"] == []


def test_a_verification_that_could_not_finish_is_not_counted_as_failed(
    handlers: dict[str, ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a verify execution whose run could not finish (the instance never came up)
    failed = event("handlers/record-verification-failed")
    failed["error"] = {"Error": "CouldNotVerify", "Cause": '{"verdict": "could-not-verify"}'}
    # When its outcome is recorded
    handlers["record"].handler(failed, CTX)
    # Then it counts as incomplete, not as a failed verification (whose alarm means a defect)
    (doc,) = emf(capsys.readouterr().out)
    assert doc.get("VerificationIncomplete") == 1.0
    assert "VerificationFailed" not in doc
