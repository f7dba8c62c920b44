"""RDS's own ways back, checked on a real server: a point-in-time restore or a snapshot is
compared with the nearest logical backup (as information), the operator's checks must pass,
and the evidence goes under the store's own records, never beside a logical backup.

The restored instance is played by the source cluster itself (a restore holds what the source
held at the restored time); the moto test drives the whole command with moto's RDS and the same
local server standing in for the instance moto says it restored.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from backproof.cli import main
from backproof.instances import native
from backproof.instances.native import POINT_IN_TIME, SNAPSHOT, WayBack
from backproof.jobs.native import WayBackRequest, verify_way_back
from backproof.model.operator import OperatorChecks
from backproof.pg.target import Target
from tests.conftest import S3Store, SourceDatabase, take_backup


def seed(db: SourceDatabase) -> None:
    db.execute(
        "CREATE TABLE public.orders (id bigint PRIMARY KEY, created_at timestamptz NOT NULL);"
        "INSERT INTO public.orders SELECT g, now() - g * interval '1 minute' "
        "FROM generate_series(1, 200) g;"
        "CREATE TABLE public.lines (order_id bigint REFERENCES public.orders, qty int);"
        "INSERT INTO public.lines SELECT g % 200 + 1, g FROM generate_series(1, 300) g;"
    )


def later_writes(db: SourceDatabase) -> None:
    """What happened on the source after the logical backup."""
    db.execute(
        "INSERT INTO public.orders SELECT g, now() FROM generate_series(201, 220) g;"
        "CREATE TABLE public.refunds (id int); INSERT INTO public.refunds VALUES (1), (2);"
    )


def server(db: SourceDatabase) -> Target:
    """The restored instance's maintenance database (the source stands in for it)."""
    return Target.from_url(db.cluster.url("postgres"))


def way_at(at: datetime, kind: str = POINT_IN_TIME) -> WayBack:
    if kind == SNAPSHOT:
        return WayBack(SNAPSHOT, "orders-prod", at, "15.4", "rds:orders-prod-2026-11-21-03-10")
    return WayBack(POINT_IN_TIME, "orders-prod", at, "15.4")


def checks(*asserts: str) -> OperatorChecks:
    return OperatorChecks.from_cli(asserts, ["public.orders.created_at=1h"])


def verdicts(report: Any, check: str) -> dict[str, tuple[str, str]]:
    return {c.subject: (c.verdict, c.detail) for c in report.checks if c.check == check}


def test_differences_from_the_nearest_backup_are_information_not_failures(
    s3_store: S3Store, source_db: SourceDatabase
) -> None:
    seed(source_db)
    store, backup = take_backup(source_db, s3_store, name="orders")
    later_writes(source_db)
    # When the source's latest restorable time is checked (restored: the source as it is now)
    request = WayBackRequest(
        "orders",
        way_at(datetime.now(UTC)),
        operator_checks=checks("SELECT count(*) > 0 FROM public.orders"),
    )
    report = verify_way_back(store, request, admin=server(source_db))
    # Then it is verified: the operator's checks passed, the database is there
    assert report.verdict == "verified", report.to_dict()["failed_checks"]
    assert report.kind == "point-in-time" and report.failures == []
    assert {c.check: c.verdict for c in report.checks if c.check in ("assertion", "freshness")} == {
        "assertion": "pass",
        "freshness": "pass",
    }
    # and every difference from the logical backup is a warning naming it
    rows = verdicts(report, "row_count")
    assert rows["public.orders"] == ("warn", rows["public.orders"][1])
    assert rows["public.orders"][1].startswith(
        f"+20 rows since the logical backup {backup.manifest.backup_id}"
    )
    assert rows["public.lines"][0] == "pass"
    assert verdicts(report, "table_present")["public.refunds"][0] == "warn"
    assert verdicts(report, "object_count")["tables"][0] == "warn"
    assert report.tools["compared_with"]["backup_id"] == backup.manifest.backup_id
    # and the evidence is a record of its own, leaving the logical backup unverified
    assert report.report_key.startswith("team-a/point-in-time/orders/")
    stored = json.loads(
        s3_store.s3.get_object(Bucket=s3_store.bucket, Key=report.report_key)["Body"].read()
    )
    assert stored["verdict"] == "verified" and stored["tools"]["way_back"]["kind"] == POINT_IN_TIME
    (logical,) = store.list_backups("orders")
    assert logical.verification is None and logical.verifications == []


def test_the_nearest_backup_is_the_newest_at_or_before_the_time(
    s3_store: S3Store, source_db: SourceDatabase
) -> None:
    seed(source_db)
    store, first = take_backup(source_db, s3_store, name="orders")
    between = datetime.now(UTC)
    later_writes(source_db)
    take_backup(source_db, s3_store, name="orders")
    # A snapshot taken between the two backups is compared with the first
    report = verify_way_back(
        store, WayBackRequest("orders", way_at(between, SNAPSHOT)), admin=server(source_db)
    )
    assert report.tools["compared_with"]["backup_id"] == first.manifest.backup_id
    assert report.report_key.startswith("team-a/snapshots/orders/")
    # and a time before every backup has nothing to compare with: said, not failed
    early = WayBackRequest("orders", way_at(between - timedelta(days=1)), dbname=source_db.dbname)
    report = verify_way_back(store, early, admin=server(source_db))
    assert report.verdict == "verified"
    assert report.tools["compared_with"] is None
    assert verdicts(report, "compared_with")["orders"][0] == "skip"


@pytest.mark.parametrize(
    ("asserts", "dbname", "failed"),
    [
        (("SELECT count(*) > 1000 FROM public.orders",), None, "assertion"),
        ((), "not_there", "database_present"),
    ],
)
def test_a_failed_operator_check_or_a_missing_database_fails_the_way_back(
    s3_store: S3Store,
    source_db: SourceDatabase,
    asserts: tuple[str, ...],
    dbname: str | None,
    failed: str,
) -> None:
    seed(source_db)
    store, _ = take_backup(source_db, s3_store, name="orders")
    request = WayBackRequest(
        "orders", way_at(datetime.now(UTC)), dbname=dbname, operator_checks=checks(*asserts)
    )
    report = verify_way_back(store, request, admin=server(source_db))
    assert report.verdict == "failed"
    assert [c.check for c in report.failures] == [failed]


def moto_rds_with_a_local_server(db: SourceDatabase, monkeypatch: pytest.MonkeyPatch) -> Any:
    """moto's RDS holds the source instance; whatever it restores is served by `db`'s cluster
    (with its credentials in the instance's secret, as RDS would keep them)."""
    rds = boto3.client("rds")
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    rds.create_db_subnet_group(
        DBSubnetGroupName="private", SubnetIds=subnets, DBSubnetGroupDescription="private"
    )
    rds.create_db_instance(
        DBInstanceIdentifier="orders-prod",
        Engine="postgres",
        EngineVersion="15.4",
        DBInstanceClass="db.r6g.large",
        MasterUsername="app",
        MasterUserPassword="not-a-real-one",
        AllocatedStorage=100,
        StorageEncrypted=True,
        BackupRetentionPeriod=7,
    )
    kwargs = db.cluster.connect_kwargs()
    secret = boto3.client("secretsmanager").create_secret(
        Name="restored-master",
        SecretString=json.dumps({"username": kwargs["user"], "password": kwargs["password"]}),
    )["ARN"]
    real = native.wait_available

    def served_locally(client: Any, identifier: str, *args: Any) -> Any:
        state = real(client, identifier, 10, 1)
        return replace(state, host="127.0.0.1", port=db.cluster.port, secret_arn=secret)

    monkeypatch.setattr(native, "wait_available", served_locally)
    return rds


def test_pitr_command_restores_checks_and_deletes_the_instance(
    s3_store: S3Store,
    source_db: SourceDatabase,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed(source_db)
    take_backup(source_db, s3_store, name="orders")
    later_writes(source_db)
    rds = moto_rds_with_a_local_server(source_db, monkeypatch)
    argv = ["--store", s3_store.url, "--database-name", "orders", "--rds-subnet-group", "private"]
    argv += ["--source-instance", "orders-prod", "--assert", "SELECT true", "--json"]
    code = main(["pitr", "--time", "latest", *argv])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, out
    assert out["verdict"] == "verified" and out["kind"] == "point-in-time"
    assert out["way_back"]["source_instance"] == "orders-prod" and out["compared_with"]
    assert out["timings"]["restore_seconds"] is not None
    assert out["report_key"].startswith("team-a/point-in-time/orders/")
    # and the newest snapshot, the same way
    code = main(["verify-snapshot", *argv])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and out["kind"] == "snapshot", out
    # Every temporary instance is gone; the source is untouched
    left = [d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]]
    assert left == ["orders-prod"]


def test_pitr_command_refuses_a_time_outside_the_window_before_anything(
    s3_store: S3Store, source_db: SourceDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    rds = moto_rds_with_a_local_server(source_db, monkeypatch)
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    argv = ["--source-instance", "orders-prod", "--store", s3_store.url]
    argv += ["--database-name", "orders", "--rds-subnet-group", "private"]
    code = main(["pitr", "--time", future, *argv])
    assert code == 2
    assert len(rds.describe_db_instances()["DBInstances"]) == 1
