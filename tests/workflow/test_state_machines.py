"""The synthesized state machines executed by moto, end to end against real PostgreSQL.

Lambda steps run the real handlers in-process; the dump/restore steps run the real container
entry point as a local process, exactly as the workflow asked (command and environment), which
reports back to the workflow with its task token. The temporary RDS instance is moto's record
of one, with a local PostgreSQL cluster standing in as the server it would be.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest

from backproof.instances.rds import RdsSettings, create_instance, describe_instance
from backproof.pg.cluster import LocalCluster
from backproof.store import SAFETY, open_store
from tests.conftest import MotoServer, SourceDatabase, take_backup
from tests.infra.conftest import cdk_context, synthesize
from tests.support.tls import TestAuthority

from .conftest import SLOTS_KEY, SLOTS_TABLE, World, build_world, event, load_handlers, seed_orders
from .deployment import Deployment, enable_execution, entered, patch_moto
from .test_notify_and_freshness import notifications, subscribe_queue


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    layer = tmp_path_factory.mktemp("layer")
    (layer / "python").mkdir()
    return synthesize(cdk_context(), layer, tmp_path_factory.mktemp("cdk.out")).template


@pytest.fixture
def target(test_authority: TestAuthority) -> Iterator[LocalCluster]:
    """The server a temporary RDS instance would be (serving TLS, as RDS does)."""
    with LocalCluster(name="bp-target", tls=test_authority.server) as cluster:
        yield cluster


@pytest.fixture
def deployed(
    moto_server: MotoServer,
    template: dict[str, Any],
    orders: SourceDatabase,
    target: LocalCluster,
    test_authority: TestAuthority,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Deployment]:
    # Given the stack deployed into moto, with the orders database's secret configured
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setenv("MOTO_PORT", moto_server.endpoint.rsplit(":", 1)[1])
    enable_execution(moto_server.endpoint)
    world = build_world()
    handlers = load_handlers(world, monkeypatch)
    patch_moto(monkeypatch, handlers)
    secrets = boto3.client("secretsmanager")
    cluster = orders.cluster
    source = secrets.create_secret(
        Name=f"src-{world.bucket}",
        SecretString=json.dumps(
            {
                "username": "backproof",
                "password": cluster.password,
                "host": "127.0.0.1",
                "port": cluster.port,
                "dbname": orders.dbname,
            }
        ),
    )["ARN"]
    instance = secrets.create_secret(
        Name=f"rds-{world.bucket}",
        SecretString=json.dumps({"username": "backproof", "password": target.password}),
    )["ARN"]

    describe = handlers["describe_instance"].describe_instance

    def as_local_server(rds: Any, identifier: str) -> Any:
        state = describe(rds, identifier)
        if state is None or state.status != "available":
            return state
        return replace(state, host="127.0.0.1", port=target.port, secret_arn=instance)

    monkeypatch.setattr(handlers["describe_instance"], "describe_instance", as_local_server)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(Path.home()),
        **moto_server.env,
        # The image's RDS CA bundle: here the CA of the test clusters.
        "BACKPROOF_RDS_CA_BUNDLE": str(test_authority.ca_file),
        # The image's PostgreSQL client (18 in the image; here every major the tests provide).
        **{k: v for k, v in os.environ.items() if k == "BACKPROOF_PG_BIN_DIRS"},
    }
    deployment = Deployment(template, world, env)
    deployment.handlers = handlers  # type: ignore[attr-defined]
    deployment.deploy(source)
    deployment.start_task_runner()
    yield deployment
    deployment.stop()


@pytest.fixture
def orders(source_db: SourceDatabase) -> SourceDatabase:
    seed_orders(source_db)
    return source_db


def rds_instances() -> list[dict[str, Any]]:
    return boto3.client("rds").describe_db_instances()["DBInstances"]


def slot_count() -> int:
    item = boto3.client("dynamodb").get_item(TableName=SLOTS_TABLE, Key={"pk": {"S": SLOTS_KEY}})
    return int(item.get("Item", {}).get("count", {"N": "0"})["N"])


def stored(world: World) -> list[Any]:

    return open_store(world.store_url).list_backups("orders")


def test_backup_workflow_dumps_verifies_by_restore_and_applies_retention(
    deployed: Deployment, orders: SourceDatabase
) -> None:
    # When the daily schedule fires with its payload
    result = deployed.execute("backup", event("backup-schedule"))
    # Then the execution succeeds through every step
    assert result["status"] == "SUCCEEDED", "\n".join(
        [str(result.get("cause")), *map(str, deployed.tasks), *result["history"]]
    )
    states = entered(result)
    for step in (
        "ResolveConfig",
        "Dump",
        "RecordBackup",
        "Verify",
        "ApplyRetention",
        "BackedUpAndVerified",
    ):
        assert step in states
    # the dump ran as the task, with the secret's password only in its environment
    backup_task, verify_task = deployed.tasks
    assert backup_task.command[0] == "backup" and backup_task.returncode == 0
    assert "s3://" not in " ".join(backup_task.command)  # the store comes from the task definition
    assert orders.cluster.password not in " ".join(backup_task.command + verify_task.command)
    assert verify_task.command[0] == "verify" and verify_task.returncode == 0
    # each under its own action's task definition (so, in AWS, its own task role)
    assert [t.definition for t in deployed.tasks] == ["backup", "verify"]
    # and the backup is stored, verified by a real restore, with the evidence beside it
    (backup,) = stored(deployed.world)
    assert backup.verification["verdict"] == "verified"
    assert backup.verification["instance"]["kind"] == "given"  # the workflow's instance
    # and the task signed the manifest and the evidence with the stack's signing key
    (signature,) = [c for c in backup.verification["checks"] if c["check"] == "integrity.signature"]
    assert signature["verdict"] == "pass"
    assert signature["found"]["key_id"] == deployed.world.signing_key_arn
    s3 = boto3.client("s3")
    for key in (backup.manifest_key, *backup.verification_keys):
        s3.head_object(Bucket=deployed.world.bucket, Key=f"{key}.sig")
    # and the temporary instance is gone, its slot free again
    assert rds_instances() == []
    assert slot_count() == 0


def test_verify_of_a_tampered_backup_fails_before_any_instance(
    deployed: Deployment, orders: SourceDatabase
) -> None:
    # Given a stored backup whose archive was changed afterwards
    backup = take_backup(orders, deployed.world, name="orders", tier="daily")[1].summary()
    s3 = boto3.client("s3")
    body = s3.get_object(Bucket=deployed.world.bucket, Key=backup["archive_key"])["Body"].read()
    s3.put_object(
        Bucket=deployed.world.bucket,
        Key=backup["archive_key"],
        Body=body[:-10],
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=deployed.world.key_arn,
    )
    queue = subscribe_queue()
    # When an operator starts verify with the console sample
    result = deployed.execute("verify", event("verify"))
    # Then it fails on integrity, tells people, and never created an instance
    assert result["status"] == "FAILED"
    assert result["error"] == "IntegrityFailure"
    states = entered(result)
    assert "VerificationNotify" in states and "CreateInstance" not in states
    assert rds_instances() == [] and deployed.tasks == []
    # and what people read names the database, the backup, the error and links the execution
    (sent,) = notifications(queue)
    assert sent["Subject"] == (
        f"backproof test: verification of backup {backup['backup_id']} of orders failed"
    )
    text = sent["Message"]
    assert "Database:      orders" in text and f"Backup:        {backup['backup_id']}" in text
    assert "Error:         IntegrityFailure" in text
    console = "https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1"
    assert f"{console}#/v2/executions/details/{result['executionArn']}" in text


def test_a_failing_restore_task_still_deletes_the_instance(
    deployed: Deployment, orders: SourceDatabase, target: LocalCluster
) -> None:
    take_backup(orders, deployed.world, name="orders", tier="daily")[1].summary()
    # Given a temporary server whose master password does not match its secret

    with psycopg.connect(**target.connect_kwargs(), autocommit=True) as conn:
        conn.execute("ALTER USER backproof PASSWORD 'changed-behind-the-secret'")
    result = deployed.execute("verify", event("verify"))
    # Then the verification fails with the task's error, and the instance is deleted anyway
    assert result["status"] == "FAILED", result["history"]
    (task,) = deployed.tasks
    assert task.returncode == 1
    states = entered(result)
    assert (
        states.index("RestoreAndCheck")
        < states.index("DeleteInstance")
        < states.index("ReleaseSlot")
    )
    assert rds_instances() == []
    assert slot_count() == 0
    assert "changed-behind-the-secret" not in task.stdout + task.stderr


def test_an_instance_that_never_becomes_available_is_deleted_after_the_ceiling(
    deployed: Deployment, orders: SourceDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    take_backup(orders, deployed.world, name="orders", tier="daily")[1].summary()
    module = deployed.handlers["describe_instance"]  # type: ignore[attr-defined]
    real = module.describe_instance
    monkeypatch.setattr(
        module,
        "describe_instance",
        lambda rds, identifier: replace(real(rds, identifier), status="creating"),
    )
    result = deployed.execute("verify", event("verify"))
    assert result["status"] == "FAILED"
    assert result["error"] == "InstanceTimeout"
    states = entered(result)
    assert states.count("DescribeInstance") == 61  # the first poll plus 60 more: the ceiling
    assert "InstanceTooSlow" in states and "DeleteInstance" in states
    assert rds_instances() == [] and deployed.tasks == []


def test_restore_dry_run_reports_the_plan_and_touches_nothing(
    deployed: Deployment, orders: SourceDatabase
) -> None:
    backup = take_backup(orders, deployed.world, name="orders", tier="daily")[1].summary()
    result = deployed.execute("restore", event("restore-existing-dry-run"))
    assert result["status"] == "SUCCEEDED", result["history"]
    plan = json.loads(result["output"])
    assert plan["backup"]["backup_id"] == backup["backup_id"]
    assert plan["tables"] == ["public.orders"]
    assert "safety backup" in plan["summary"]
    assert deployed.tasks == [] and rds_instances() == []


def test_restore_with_a_wrong_confirmation_is_rejected_before_anything(
    deployed: Deployment, orders: SourceDatabase
) -> None:
    take_backup(orders, deployed.world, name="orders", tier="daily")[1].summary()
    request = event("restore-existing-dry-run")
    request.update(dry_run=False, target={**request["target"], "confirm": "orders"})
    result = deployed.execute("restore", request)
    assert result["status"] == "FAILED"
    assert result["error"] == "BadInput"
    assert "target.confirm" in result["cause"]
    assert entered(result)[-1] == "RequestRejected"
    assert deployed.tasks == [] and rds_instances() == []


def test_restore_into_a_new_instance_hands_it_over(
    deployed: Deployment, orders: SourceDatabase, target: LocalCluster
) -> None:
    take_backup(orders, deployed.world, name="orders", tier="daily")[1].summary()
    result = deployed.execute("restore", {**event("restore-new-instance")})
    assert result["status"] == "SUCCEEDED", "\n".join(
        [str(result.get("cause")), *map(str, deployed.tasks), *result["history"]]
    )
    (task,) = deployed.tasks
    assert task.command[0] == "restore" and task.returncode == 0, task.stderr
    assert task.definition == "restore"
    # The restored rows are in the new server, and the instance is kept, off the janitor's list

    with psycopg.connect(**target.connect_kwargs(orders.dbname)) as conn:
        assert conn.execute("SELECT count(*) FROM public.orders").fetchone() == (500,)
    (instance,) = rds_instances()
    tags = {t["Key"] for t in instance["TagList"]}
    assert "backproof:ephemeral" not in tags


def test_janitor_workflow_deletes_a_leaked_instance_and_says_so(deployed: Deployment) -> None:

    create_instance(
        boto3.client("rds"),
        major=15,
        settings=RdsSettings(
            subnet_group="backproof-verify",
            deployment=deployed.world.env()["BACKPROOF_DEPLOYMENT"],
        ),
        identifier="bp-leaked",
        now=datetime.now(UTC) - timedelta(days=2),
    )
    result = deployed.execute("janitor", event("janitor-schedule"))
    assert result["status"] == "SUCCEEDED", result["history"]
    assert "NotifyLeaked" in entered(result)
    assert rds_instances() == []


def test_verification_waits_for_a_free_slot(deployed: Deployment, orders: SourceDatabase) -> None:

    take_backup(orders, deployed.world, name="orders", tier="daily")[1].summary()
    dynamodb = boto3.client("dynamodb")
    # Given every verification slot taken (the example configuration allows two)
    dynamodb.put_item(
        TableName=SLOTS_TABLE,
        Item={
            "pk": {"S": SLOTS_KEY},
            "count": {"N": "2"},
            "a": {"S": "arn:aws:states:us-east-1:123456789012:execution:verify:a"},
            "b": {"S": "arn:aws:states:us-east-1:123456789012:execution:verify:b"},
        },
    )

    def finish_one() -> None:  # another verification ends a moment later
        dynamodb.update_item(
            TableName=SLOTS_TABLE,
            Key={"pk": {"S": SLOTS_KEY}},
            UpdateExpression="SET #c = #c - :one REMOVE a",
            ExpressionAttributeNames={"#c": "count"},
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    timer = threading.Timer(1.0, finish_one)
    timer.start()
    # When a verification starts, Then it retries until a slot is free, and only then creates
    # its instance (retry waits are patched short; the ceiling is checked on the definition)
    result = deployed.execute("verify", event("verify"))
    timer.join()
    assert result["status"] == "SUCCEEDED", "\n".join(result["history"])
    history = result["history"]
    retries = [
        h
        for h in history[: history.index("TaskStateEntered:CreateInstance")]
        if h.startswith("TaskFailed")
    ]
    assert len(retries) >= 2
    assert slot_count() == 1  # its own slot released, the other holder's untouched
    assert rds_instances() == []


def test_restore_into_an_existing_database_takes_a_safety_backup_first(
    deployed: Deployment, orders: SourceDatabase, target: LocalCluster
) -> None:

    backup = take_backup(orders, deployed.world, name="orders", tier="daily")[1].summary()
    # Given a staging database already holding other rows,
    target.create_database("orders_staging")
    with psycopg.connect(**target.connect_kwargs("orders_staging"), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.orders (id bigint PRIMARY KEY, created_at timestamptz "
            "NOT NULL, note text); INSERT INTO public.orders VALUES (1, now(), 'stale')"
        )
    secret = boto3.client("secretsmanager").create_secret(
        Name=f"staging-{deployed.world.bucket}",
        SecretString=json.dumps(
            {
                "username": "backproof",
                "password": target.password,
                "host": "127.0.0.1",
                "port": target.port,
                "dbname": "orders_staging",
            }
        ),
    )["ARN"]
    # declared as orders' restore target, with its own restore secret
    ssm = boto3.client("ssm")
    settings = json.loads(
        ssm.get_parameter(Name="/backproof/prod/databases/orders")["Parameter"]["Value"]
    )
    (staging,) = settings["restore_targets"]
    staging.update(secret_arn=secret, sslmode="verify-full")
    ssm.put_parameter(
        Name="/backproof/prod/databases/orders",
        Type="String",
        Value=json.dumps(settings),
        Overwrite=True,
    )
    # (the whole database: a selected table that another table references is an engine issue
    # reported separately)
    request = {**event("restore-existing-dry-run"), "dry_run": False, "tables": []}
    # When the operator restores the backup into it, confirming the target's name
    result = deployed.execute("restore", request)
    assert result["status"] == "SUCCEEDED", "\n".join(
        [*map(str, deployed.tasks), *result["history"]]
    )
    (task,) = deployed.tasks
    assert task.command[0] == "restore" and task.definition == "restore"
    output = json.loads(task.stdout.strip().splitlines()[-1])
    # Then a safety backup of staging was taken before its table was replaced
    assert output["safety_backup_id"]

    # filed under the target's identity, apart from every database's backups
    safety = open_store(deployed.world.store_url).list_backups(
        f"127.0.0.1-{target.port}-orders_staging", namespace=SAFETY
    )
    assert [b.backup_id for b in safety] == [output["safety_backup_id"]]
    assert safety[0].manifest.tier == "safety"
    with psycopg.connect(**target.connect_kwargs("orders_staging")) as conn:
        assert conn.execute("SELECT count(*) FROM public.orders").fetchone() == (500,)
    assert output["backup_id"] == backup["backup_id"]


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (
            {"database": "orders", "backup_id": "20261121T050312.123Z-1a2b3c"},
            "BackupNotFound",
            "no backup 20261121T050312.123Z-1a2b3c",
        ),
        (
            {"database": "orders", "backup_id": "latest", "backupid": "x"},
            "BadInput",
            "unknown field 'backupid'",
        ),
    ],
)
def test_a_console_verification_of_something_that_is_not_there_is_rejected(
    deployed: Deployment, request_: dict[str, str], error: str, message: str
) -> None:
    # When an operator asks to verify a backup that does not exist, or misspells a field
    result = deployed.execute("verify", request_)
    # Then the request is rejected (not a failed verification, which would page someone)
    assert result["status"] == "FAILED"
    assert result["error"] == error
    assert message in result["cause"]
    assert entered(result) == ["CheckIntegrity", "RequestRejected"]
    assert rds_instances() == [] and deployed.tasks == []


def test_verify_input_missing_a_field_is_rejected_by_name(deployed: Deployment) -> None:
    # When an operator forgets the database in the console input
    result = deployed.execute("verify", {"backup_id": "latest"})
    # Then the run is rejected naming the field, before anything is read or created
    assert result["status"] == "FAILED"
    assert result["error"] == "BadInput"
    assert "event field 'database' is missing" in result["cause"]
    assert entered(result) == ["CheckIntegrity", "RequestRejected"]
    assert rds_instances() == [] and deployed.tasks == []


def test_a_second_restore_into_the_same_target_is_refused(
    deployed: Deployment, orders: SourceDatabase
) -> None:
    take_backup(orders, deployed.world, name="orders", tier="daily")
    # Given a restore into orders-staging already running (it holds the target's lock)
    running = "arn:aws:states:us-east-1:123456789012:execution:restore:first-restore"
    boto3.client("dynamodb").put_item(
        TableName=SLOTS_TABLE,
        Item={
            "pk": {"S": "lock#restore#orders#orders-staging"},
            "kind": {"S": "lock"},
            "execution": {"S": running},
            "database": {"S": "orders"},
            "backup_id": {"S": "20261121T050312.123Z-1a2b3c"},
        },
    )
    # When an operator starts a second one
    request = {**event("restore-existing-dry-run"), "dry_run": False, "tables": []}
    result = deployed.execute("restore", request)
    # Then it is refused naming the running execution, before any task touches the target
    assert result["status"] == "FAILED"
    assert result["error"] == "RestoreInProgress"
    assert running in result["cause"]
    assert deployed.tasks == []


def test_a_verification_of_a_backup_already_being_verified_is_refused(
    deployed: Deployment, orders: SourceDatabase
) -> None:
    backup = take_backup(orders, deployed.world, name="orders", tier="daily")[1].summary()
    running = "arn:aws:states:us-east-1:123456789012:execution:verify:first-verify"
    boto3.client("dynamodb").put_item(
        TableName=SLOTS_TABLE,
        Item={
            "pk": {"S": f"lock#verify#orders#{backup['backup_id']}"},
            "kind": {"S": "lock"},
            "execution": {"S": running},
            "database": {"S": "orders"},
            "backup_id": {"S": backup["backup_id"]},
        },
    )
    result = deployed.execute("verify", {"database": "orders", "backup_id": backup["backup_id"]})
    assert result["status"] == "FAILED"
    assert result["error"] == "VerificationInProgress"
    assert running in result["cause"]
    assert rds_instances() == [] and deployed.tasks == []


# -- RDS's own ways back, and rollbacks ----------------------------------------------------------
# moto's RDS restores the source instance (a snapshot, or a point in time) and reports the new
# instance available at once; the source's own cluster stands in for the server that restore
# would be (it holds what the source holds), reached with the restored instance's master secret.
SOURCE_INSTANCE = "orders-prod"  # cdk.json's rds_instance_id for orders


@pytest.fixture
def ways_back(
    deployed: Deployment, orders: SourceDatabase, monkeypatch: pytest.MonkeyPatch
) -> Deployment:
    """The source instance in moto's RDS (automated backups on, encrypted: moto takes an
    automated snapshot at once), and every restored instance served by the source's cluster."""
    boto3.client("rds").create_db_instance(
        DBInstanceIdentifier=SOURCE_INSTANCE,
        Engine="postgres",
        EngineVersion="15.4",
        DBInstanceClass="db.r6g.large",
        MasterUsername="app",
        MasterUserPassword="not-a-real-one",
        AllocatedStorage=100,
        StorageEncrypted=True,
        BackupRetentionPeriod=7,
    )
    cluster = orders.cluster
    restored_secret = boto3.client("secretsmanager").create_secret(
        Name=f"restored-{deployed.world.bucket}",
        SecretString=json.dumps({"username": "backproof", "password": cluster.password}),
    )["ARN"]

    def as_the_source(rds: Any, identifier: str) -> Any:
        state = describe_instance(rds, identifier)
        if state is None or state.status != "available":
            return state
        return replace(state, host="127.0.0.1", port=cluster.port, secret_arn=restored_secret)

    module = deployed.handlers["describe_instance"]  # type: ignore[attr-defined]
    monkeypatch.setattr(module, "describe_instance", as_the_source)
    return deployed


def temporary_instances() -> list[str]:
    return [
        d["DBInstanceIdentifier"]
        for d in boto3.client("rds").describe_db_instances()["DBInstances"]
        if d["DBInstanceIdentifier"] != SOURCE_INSTANCE
    ]


def evidence(deployment: Deployment, namespace: str) -> list[dict[str, Any]]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=deployment.world.bucket, Prefix=f"{namespace}/orders/")
    return [
        json.loads(s3.get_object(Bucket=deployment.world.bucket, Key=o["Key"])["Body"].read())
        for o in listed.get("Contents", [])
    ]


def explain(result: dict[str, Any], deployment: Deployment) -> str:
    return "\n".join([str(result.get("cause")), *map(str, deployment.tasks), *result["history"]])


def test_the_newest_snapshot_is_restored_checked_compared_and_deleted(
    ways_back: Deployment, orders: SourceDatabase
) -> None:
    _, backup = take_backup(orders, ways_back.world, name="orders", tier="daily")
    # Given a manual snapshot taken after the logical backup (newer than the automated one)
    boto3.client("rds").create_db_snapshot(
        DBInstanceIdentifier=SOURCE_INSTANCE, DBSnapshotIdentifier="before-migration-42"
    )
    # When the weekly snapshot schedule fires with its payload
    result = ways_back.execute("native", event("verify-snapshot-schedule"))
    # Then the execution restored the snapshot, checked it, and deleted the instance
    assert result["status"] == "SUCCEEDED", explain(result, ways_back)
    states = entered(result)
    for step in ("PlanWayBack", "AcquireSlot", "RestoreInstance", "CheckRestoredInstance"):
        assert step in states
    assert states.index("CheckRestoredInstance") < states.index("DeleteInstance")
    (task,) = ways_back.tasks
    assert task.command[0] == "native" and task.returncode == 0, task.stderr
    assert task.definition == "native"
    assert temporary_instances() == [] and slot_count() == 0
    # and the evidence, under snapshots/, says what was compared with what
    (report,) = evidence(ways_back, "snapshots")
    assert report["verdict"] == "verified" and report["kind"] == "snapshot"
    assert report["tools"]["way_back"]["snapshot_id"] == "before-migration-42"
    assert report["tools"]["way_back"]["snapshot_type"] == "manual"
    assert report["tools"]["compared_with"], (report["tools"], backup.manifest.snapshot)
    assert report["tools"]["compared_with"]["backup_id"] == backup.manifest.backup_id
    assert report["timings"]["restore_seconds"] is not None
    assert {c["check"] for c in report["checks"]} >= {"database_present", "row_count", "assertion"}


def test_a_check_task_that_fails_still_deletes_the_restored_instance(
    ways_back: Deployment, orders: SourceDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    take_backup(orders, ways_back.world, name="orders", tier="daily")
    # Given a restored instance whose master secret does not open it
    module = ways_back.handlers["describe_instance"]  # type: ignore[attr-defined]
    served = module.describe_instance
    wrong = boto3.client("secretsmanager").create_secret(
        Name=f"wrong-{ways_back.world.bucket}",
        SecretString=json.dumps({"username": "backproof", "password": "not-this-one"}),
    )["ARN"]
    monkeypatch.setattr(
        module, "describe_instance", lambda rds, ident: _with_secret(served(rds, ident), wrong)
    )
    result = ways_back.execute("native", event("verify-snapshot-schedule"))
    # Then the run fails with the task's error, after deleting the instance and its slot
    assert result["status"] == "FAILED", explain(result, ways_back)
    states = entered(result)
    assert states.index("CheckRestoredInstance") < states.index("DeleteInstance")
    assert "NotifyWayBackFailed" in states
    assert temporary_instances() == [] and slot_count() == 0


def _with_secret(state: Any, secret: str) -> Any:
    return replace(state, secret_arn=secret) if state is not None and state.host else state


def test_a_restore_that_rds_cannot_finish_is_deleted(
    ways_back: Deployment, orders: SourceDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    take_backup(orders, ways_back.world, name="orders", tier="daily")
    module = ways_back.handlers["describe_instance"]  # type: ignore[attr-defined]
    monkeypatch.setattr(
        module,
        "describe_instance",
        lambda rds, ident: replace(describe_instance(rds, ident), status="incompatible-restore"),
    )
    result = ways_back.execute("native", event("verify-point-in-time-schedule"))
    assert result["status"] == "FAILED" and result["error"] == "InstanceFailed"
    states = entered(result)
    assert states.index("RestoreInstance") < states.index("DeleteInstance")
    assert temporary_instances() == [] and ways_back.tasks == [] and slot_count() == 0


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (
            {"database": "orders", "mode": "point_in_time", "time": "2099-01-01T00:00:00Z"},
            "BadInput",
            "after RDS instance 'orders-prod''s latest restorable time",
        ),
        (
            {"database": "orders", "mode": "snapshot", "source_instance": "billing-prod"},
            "BadInput",
            "is not 'orders''s configured RDS instance",
        ),
        ({"database": "orders", "mode": "dump"}, "BadInput", "mode must be one of"),
    ],
)
def test_a_way_back_that_cannot_be_restored_is_rejected_before_anything(
    ways_back: Deployment, request_: dict[str, str], error: str, message: str
) -> None:
    result = ways_back.execute("native", request_)
    assert result["status"] == "FAILED"
    assert result["error"] == error and message in result["cause"]
    assert entered(result) == ["PlanWayBack", "RequestRejected"]
    assert temporary_instances() == [] and ways_back.tasks == []


def test_a_console_point_in_time_request_is_verified_by_the_native_workflow(
    ways_back: Deployment, orders: SourceDatabase
) -> None:
    take_backup(orders, ways_back.world, name="orders", tier="daily")
    # A dry run only plans
    planned = ways_back.execute("restore", {**event("restore-point-in-time"), "dry_run": True})
    assert planned["status"] == "SUCCEEDED", explain(planned, ways_back)
    plan = json.loads(planned["output"])
    assert plan["target"] == {
        "kind": "point_in_time",
        "time": "latest",
        "source_instance": SOURCE_INSTANCE,
    }
    assert temporary_instances() == [] and ways_back.tasks == []
    # The real request starts the native workflow and ends with its verification
    result = ways_back.execute("restore", event("restore-point-in-time"))
    assert result["status"] == "SUCCEEDED", explain(result, ways_back)
    assert "RestorePointInTime" in entered(result)
    output = json.loads(result["output"])
    assert output["verification"]["verdict"] == "verified"
    assert output["verification"]["kind"] == "point-in-time"
    (report,) = evidence(ways_back, "point-in-time")
    assert report["tools"]["way_back"]["source_instance"] == SOURCE_INSTANCE
    assert temporary_instances() == []


def declare_staging(deployment: Deployment, target: LocalCluster) -> None:
    """orders-staging (a database on the target cluster) as orders' declared restore target."""
    secret = boto3.client("secretsmanager").create_secret(
        Name=f"staging-{deployment.world.bucket}",
        SecretString=json.dumps(
            {
                "username": "backproof",
                "password": target.password,
                "host": "127.0.0.1",
                "port": target.port,
                "dbname": "orders_staging",
            }
        ),
    )["ARN"]
    ssm = boto3.client("ssm")
    name = "/backproof/prod/databases/orders"
    settings = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    (staging,) = settings["restore_targets"]
    staging.update(secret_arn=secret, sslmode="verify-full")
    ssm.put_parameter(Name=name, Type="String", Value=json.dumps(settings), Overwrite=True)


def staging_rows(target: LocalCluster) -> list[tuple[Any, ...]]:
    with psycopg.connect(**target.connect_kwargs("orders_staging")) as conn:
        return conn.execute("SELECT id, note FROM public.orders ORDER BY id LIMIT 3").fetchall()


def test_a_console_rollback_puts_the_target_back(
    deployed: Deployment, orders: SourceDatabase, target: LocalCluster
) -> None:
    take_backup(orders, deployed.world, name="orders", tier="daily")
    target.create_database("orders_staging")
    with psycopg.connect(**target.connect_kwargs("orders_staging"), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.orders (id bigint PRIMARY KEY, created_at timestamptz "
            "NOT NULL, note text); INSERT INTO public.orders VALUES (1, now(), 'stale')"
        )
    declare_staging(deployed, target)
    restore = {**event("restore-existing-dry-run"), "dry_run": False, "tables": []}
    restored = deployed.execute("restore", restore)
    assert restored["status"] == "SUCCEEDED", explain(restored, deployed)
    restore_id = json.loads(deployed.tasks[0].stdout.strip().splitlines()[-1])["restore_id"]
    assert len(staging_rows(target)) == 3  # the backup's rows
    # When the operator rolls that restore back from the console, confirming the target
    request = {**event("restore-rollback"), "rollback": restore_id, "dry_run": False}
    result = deployed.execute("restore", request)
    # Then the task restored the safety backup into the emptied target
    assert result["status"] == "SUCCEEDED", explain(result, deployed)
    rollback = deployed.tasks[-1]
    assert rollback.command[0] == "restore"
    assert json.loads(rollback.command[1])["rollback"] == restore_id
    out = json.loads(rollback.stdout.strip().splitlines()[-1])
    assert out["rolls_back"] == restore_id and out["verdict"] == "verified"
    assert [(i, n) for i, n in staging_rows(target)] == [(1, "stale")]


def test_an_instance_is_backed_up_database_by_database_and_each_verified(
    deployed: Deployment, orders: SourceDatabase
) -> None:
    # Given the orders entry declared as an instance: every database named like this test's
    # but the excluded one (the secret's own database is only connected to, to list them);
    # the entry's checks (an assertion and a freshness check on public.orders) apply to each
    prefix = f"inst{os.urandom(3).hex()}_"
    made = [f"{prefix}{suffix}" for suffix in ("a", "b", "old")]
    for name in made:
        orders.cluster.create_database(name)
        with psycopg.connect(**orders.cluster.connect_kwargs(name), autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE public.orders AS SELECT g AS id, now() AS created_at "
                "FROM generate_series(1, 50) g"
            )
    ssm = boto3.client("ssm")
    (name,) = [
        p["Name"] for p in ssm.describe_parameters()["Parameters"] if p["Name"].endswith("/orders")
    ]
    settings = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    settings.update(databases=f"{prefix}*", exclude_databases=[f"{prefix}old"])
    ssm.put_parameter(Name=name, Value=json.dumps(settings), Type="String", Overwrite=True)
    try:
        # When the daily schedule fires
        result = deployed.execute("backup", event("backup-schedule"))
    finally:
        with psycopg.connect(**orders.cluster.connect_kwargs(), autocommit=True) as conn:
            for db in made:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    # Then one task backs up both databases, each is then verified by its own restore
    assert result["status"] == "SUCCEEDED", "\n".join(
        [str(result.get("cause")), *map(str, deployed.tasks), *result["history"]]
    )
    states = entered(result)
    for step in ("DumpEvery", "RecordDatabaseBackup", "VerifyDatabase", "ApplyDatabaseRetention"):
        assert step in states
    assert [t.definition for t in deployed.tasks] == ["backup", "verify", "verify"]
    # and each is filed under orders.<database>, verified, with its own evidence
    store = open_store(deployed.world.store_url)
    for db in made[:2]:
        (backup,) = store.list_backups(f"orders.{db}")
        assert backup.verification is not None and backup.verification["verdict"] == "verified"
    assert store.list_backups(f"orders.{made[2]}") == []
    assert rds_instances() == [] and slot_count() == 0
