"""Handlers in-process against moto and real PostgreSQL; state machines executed by moto.

The handler modules read their environment once at import (as in Lambda), so each test
that needs them gets freshly imported modules bound to its own bucket and key.
"""

from __future__ import annotations

import importlib
import json
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.config import load
from tests.conftest import SourceDatabase
from tests.infra.conftest import cdk_context

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
HANDLERS = (
    "integrity",
    "create_instance",
    "describe_instance",
    "delete_instance",
    "keep_instance",
    "retention",
    "record",
    "validate_restore",
    "janitor",
    "stop_tasks",
    "freshness",
    "notify",
    "native_plan",
    "restore_instance",
)
SLOTS_TABLE = "backproof-slots"
# Where the stack stores each database's settings (deployment "prod" in cdk.json).
SETTINGS_PREFIX = "/backproof/prod/databases"
SLOTS_KEY = "verify-slots"
SUBNET_GROUP = "backproof-verify"
# The topic the stack's notify function publishes to: deployment.py creates it in moto under
# this name, the notify tests create it themselves.
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:backproof"


def event(name: str) -> Any:
    """A sample from events/ (handler samples live in events/handlers/)."""
    return json.loads((EVENTS / f"{name}.json").read_text())


class LambdaContext:
    function_name = "backproof-test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:backproof-test"
    aws_request_id = "00000000-0000-0000-0000-000000000000"


@dataclass
class World:
    """AWS resources a deployment would have, inside moto."""

    bucket: str
    store_url: str
    key_arn: str
    vpc_id: str
    subnet_ids: list[str]
    security_group_id: str
    # The asymmetric key that signs manifests and evidence (the stack's SigningKey).
    signing_key_arn: str = ""

    @property
    def url(self) -> str:
        return self.store_url

    @property
    def kms_key_id(self) -> str:
        return self.key_arn

    def env(self) -> dict[str, str]:
        return {
            "BACKPROOF_STORE": self.store_url,
            "BACKPROOF_KMS_KEY_ID": self.key_arn,
            "BACKPROOF_DEPLOYMENT": "test",
            "BACKPROOF_SLOTS_TABLE": SLOTS_TABLE,
            "BACKPROOF_SLOTS_KEY": SLOTS_KEY,
            "BACKPROOF_DATABASES": "orders",
            "BACKPROOF_SETTINGS_PREFIX": SETTINGS_PREFIX,
            "BACKPROOF_TOPIC_ARN": TOPIC_ARN,
            "BACKPROOF_SIGNING_KMS_KEY_ID": self.signing_key_arn,
        }


def build_world() -> World:
    """Bucket with SSE-KMS default, a customer key, a VPC with two subnets, slot table."""
    s3, kms, ec2, rds = (boto3.client(n) for n in ("s3", "kms", "ec2", "rds"))
    bucket = f"backproof-{secrets.token_hex(4)}"
    key_arn = kms.create_key(Description="backproof test key")["KeyMetadata"]["Arn"]
    signing_key_arn = kms.create_key(
        Description="backproof signing key", KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY"
    )["KeyMetadata"]["Arn"]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key_arn,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"us-east-1{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    sg = ec2.create_security_group(
        GroupName=f"bp-{secrets.token_hex(3)}", Description="t", VpcId=vpc
    )["GroupId"]
    try:
        rds.create_db_subnet_group(
            DBSubnetGroupName=SUBNET_GROUP,
            SubnetIds=subnets,
            DBSubnetGroupDescription="verification instances",
        )
    except rds.exceptions.DBSubnetGroupAlreadyExistsFault:
        pass
    dynamodb = boto3.client("dynamodb")
    try:
        dynamodb.create_table(
            TableName=SLOTS_TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        )
    except dynamodb.exceptions.ResourceInUseException:
        dynamodb.delete_item(TableName=SLOTS_TABLE, Key={"pk": {"S": SLOTS_KEY}})
    # Each configured database's settings as the stack stores them (cdk.json's example).
    for db in load(cdk_context()["backproof"]).databases:
        boto3.client("ssm").put_parameter(
            Name=f"{SETTINGS_PREFIX}/{db.name}",
            Value=json.dumps(db.settings()),
            Type="String",
            Overwrite=True,
        )
    return World(bucket, f"s3://{bucket}", key_arn, vpc, subnets, sg, signing_key_arn)


def load_handlers(world: World, monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    """Import every handler afresh under this world's environment (a Lambda cold start)."""
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    for name in [m for m in sys.modules if m == "handlers" or m.startswith("handlers.")]:
        del sys.modules[name]
    return {name: importlib.import_module(f"handlers.{name}") for name in HANDLERS}


def seed_orders(db: SourceDatabase) -> None:
    db.execute(
        "CREATE TABLE public.orders (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, "
        "note text); INSERT INTO public.orders SELECT g, now() - g * interval '1 minute', "
        "'order ' || g FROM generate_series(1, 500) g;"
        "CREATE TABLE public.lines (order_id bigint REFERENCES public.orders, qty int);"
        "INSERT INTO public.lines SELECT g % 500 + 1, g FROM generate_series(1, 1000) g;"
    )


@pytest.fixture
def world() -> Iterator[World]:

    with mock_aws():
        yield build_world()


@pytest.fixture
def handlers(world: World, monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    return load_handlers(world, monkeypatch)


@pytest.fixture
def orders_db(source_db: SourceDatabase) -> SourceDatabase:
    seed_orders(source_db)
    return source_db
