"""The orchestration functions: thin Lambda adapters over the engine, one role each.

Each function gets its own role holding only what its one engine call needs. Functions
do no dumping or restoring (those are Fargate tasks), so none needs a VPC.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from backproof.contract import EPHEMERAL_TAG, INSTANCE_PREFIX, METRICS_NAMESPACE

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LAYER_DIR = REPO_ROOT / "layers" / "build" / "layer"
# The Lambda runtime; layers/build.py fetches wheels for this Python and arm64.
LAMBDA_PYTHON = "3.14"
# The engine tags every instance it creates with EPHEMERAL_TAG and names it INSTANCE_PREFIX...;
# creation must carry the tag and deletion is only allowed where it is present.
MANAGED_TAG = EPHEMERAL_TAG
SLOTS_KEY = "verify-slots"


def layer_directory(configured: str | None) -> Path:
    """The built layer (a directory holding `python/`). The default one is (re)built whenever
    the engine's sources changed since it was built, so a synth never packs a stale engine."""
    path = Path(configured) if configured else DEFAULT_LAYER_DIR
    if not path.is_absolute():
        path = REPO_ROOT / path
    if configured:
        if not (path / "python").is_dir():
            raise FileNotFoundError(
                f"layer directory {path} has no python/ folder; run layers/build.py"
            )
        return path
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "layers" / "build.py"), "--out", str(path), "--if-stale"],
        check=True,
    )
    return path


@dataclass(frozen=True)
class FunctionSpec:
    handler: str
    description: str
    timeout: Duration
    memory: int = 512


SPECS = {
    "integrity": FunctionSpec(
        "handlers.integrity.handler",
        "Check a stored backup against its manifest",
        Duration.minutes(15),
        1769,
    ),
    "keep_instance": FunctionSpec(
        "handlers.keep_instance.handler",
        "Hand a restored instance over to the operator",
        Duration.minutes(1),
    ),
    "create_instance": FunctionSpec(
        "handlers.create_instance.handler", "Create a temporary RDS instance", Duration.minutes(1)
    ),
    "describe_instance": FunctionSpec(
        "handlers.describe_instance.handler",
        "Report a temporary instance's state",
        Duration.minutes(1),
    ),
    "delete_instance": FunctionSpec(
        "handlers.delete_instance.handler", "Delete a temporary RDS instance", Duration.minutes(1)
    ),
    "retention": FunctionSpec(
        "handlers.retention.handler", "Apply grandfather-father-son retention", Duration.minutes(5)
    ),
    "record": FunctionSpec(
        "handlers.record.handler",
        "Publish a backup or verification outcome as metrics",
        Duration.seconds(30),
        256,
    ),
    "validate_restore": FunctionSpec(
        "handlers.validate_restore.handler",
        "Validate an operator restore request",
        Duration.minutes(1),
    ),
    "janitor": FunctionSpec(
        "handlers.janitor.handler",
        "Delete expired temporary instances, free stale slots",
        Duration.minutes(5),
    ),
    "stop_tasks": FunctionSpec(
        "handlers.stop_tasks.handler",
        "Stop the dump/restore task of an execution that ended badly",
        Duration.minutes(1),
        256,
    ),
    "freshness": FunctionSpec(
        "handlers.freshness.handler",
        "Publish each database's seconds since its newest verified backup",
        Duration.minutes(5),
    ),
    "native_plan": FunctionSpec(
        "handlers.native_plan.handler",
        "Plan the verification of an RDS snapshot or point-in-time restore",
        Duration.minutes(1),
    ),
    "restore_instance": FunctionSpec(
        "handlers.restore_instance.handler",
        "Restore an RDS snapshot or point in time into a temporary instance",
        Duration.minutes(1),
    ),
    "notify": FunctionSpec(
        "handlers.notify.handler",
        "Tell people what happened, with a console link; ping after verified backups",
        Duration.minutes(1),
        256,
    ),
}


class Functions(Construct):
    """All Lambda functions, the shared layer, and the verification slot table."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deployment: str,
        bucket: s3.IBucket,
        key: kms.IKey,
        layer_dir: Path,
        log_retention: logs.RetentionDays,
        max_concurrent_verifications: int,
        subnet_groups: list[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.deployment = deployment
        self.subnet_groups = subnet_groups
        self.key = key
        self.log_retention = log_retention
        self.layer = lambda_.LayerVersion(
            self,
            "Engine",
            code=lambda_.Code.from_asset(str(layer_dir)),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_14],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description="backproof engine and its dependencies (aarch64 wheels)",
        )
        self.code = lambda_.Code.from_asset(
            str(REPO_ROOT / "functions"), exclude=["task", "**/__pycache__", "*.pyc"]
        )
        # One item counts running verifications; workflows take a slot before creating an
        # instance so RDS instance quotas and budgets hold however many backups finish at once.
        self.slots = dynamodb.TableV2(
            self,
            "VerificationSlots",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            # Holds only a count and execution ARNs: the AWS-owned key is enough.
            encryption=dynamodb.TableEncryptionV2.dynamo_owned_key(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.max_concurrent_verifications = max_concurrent_verifications
        env = {
            "BACKPROOF_STORE": f"s3://{bucket.bucket_name}",
            "BACKPROOF_KMS_KEY_ID": key.key_arn,
            "BACKPROOF_DEPLOYMENT": deployment,
        }
        self.fn: dict[str, lambda_.Function] = {}
        for name, spec in SPECS.items():
            self.fn[name] = self._function(name, spec, env)
        self._grant(bucket, key)

    def _function(self, name: str, spec: FunctionSpec, env: dict[str, str]) -> lambda_.Function:
        cid = "".join(part.title() for part in name.split("_"))
        role = iam.Role(
            self,
            f"{cid}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"backproof {self.deployment}: {spec.description}",
        )
        log_group = logs.LogGroup(
            self,
            f"{cid}Logs",
            retention=self.log_retention,
            encryption_key=self.key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # Written out instead of AWSLambdaBasicExecutionRole: only this function's log group.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn, f"{log_group.log_group_arn}:log-stream:*"],
            )
        )
        return lambda_.Function(
            self,
            cid,
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            handler=spec.handler,
            code=self.code,
            layers=[self.layer],
            role=role,
            timeout=spec.timeout,
            memory_size=spec.memory,
            description=f"backproof: {spec.description}",
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            environment={
                **env,
                "POWERTOOLS_SERVICE_NAME": f"backproof-{name.replace('_', '-')}",
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
        )

    def read_settings(self, name: str, prefix: str, arn_prefix: str) -> None:
        """Let function `name` read the databases' deployed settings (one SSM parameter each)."""
        self.fn[name].add_environment("BACKPROOF_SETTINGS_PREFIX", prefix)
        self.fn[name].add_to_role_policy(
            iam.PolicyStatement(actions=["ssm:GetParameter"], resources=[f"{arn_prefix}/*"])
        )

    def _grant(self, bucket: s3.IBucket, key: kms.IKey) -> None:
        stack = Stack.of(self)
        fn = self.fn
        backups = bucket.arn_for_objects("backups/*")
        safety = bucket.arn_for_objects("safety/*")
        read_backups = [
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectTagging"], resources=[backups]
            ),
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn]),
            iam.PolicyStatement(actions=["kms:Decrypt"], resources=[key.key_arn]),
        ]
        for name in ("integrity", "validate_restore", "retention", "freshness"):
            for statement in read_backups:
                fn[name].add_to_role_policy(statement)
        fn["retention"].add_to_role_policy(
            iam.PolicyStatement(actions=["s3:DeleteObject"], resources=[backups])
        )
        # Retention reads each object's Object Lock retain-until date before deleting
        # (HeadObject omits it without this): a locked backup is kept, not hidden behind
        # delete markers.
        fn["retention"].add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObjectRetention"], resources=[backups, safety])
        )
        # Retention also prunes the safety backups of restore targets (newest 5 per target).
        fn["retention"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectTagging", "s3:DeleteObject"],
                resources=[safety],
            )
        )
        # Retention also decides about uploads still in progress (never deletes recent ones).
        fn["retention"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucketMultipartUploads"], resources=[bucket.bucket_arn]
            )
        )

        def rds_arn(resource: str, name: str) -> str:
            return stack.format_arn(
                service="rds",
                resource=resource,
                resource_name=name,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )

        managed_db = rds_arn("db", f"{INSTANCE_PREFIX}*")
        fn["create_instance"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["rds:CreateDBInstance", "rds:AddTagsToResource"],
                resources=[
                    managed_db,
                    *[rds_arn("subgrp", name) for name in self.subnet_groups],
                    rds_arn("pg", "default.*"),
                    rds_arn("og", "default:*"),
                ],
                conditions={"StringEquals": {f"aws:RequestTag/{MANAGED_TAG}": "true"}},
            )
        )
        # ManageMasterUserPassword: RDS creates the master secret with the caller's rights.
        fn["create_instance"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:CreateSecret", "secretsmanager:TagResource"],
                resources=[
                    stack.format_arn(
                        service="secretsmanager",
                        resource="secret",
                        resource_name="rds!*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        # RDS needs a grant on the key to encrypt the instance's storage; only RDS may use it.
        fn["create_instance"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["kms:CreateGrant"],
                resources=[key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        fn["create_instance"].add_to_role_policy(
            iam.PolicyStatement(actions=["kms:DescribeKey"], resources=[key.key_arn])
        )
        fn["keep_instance"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["rds:RemoveTagsFromResource"],
                resources=[managed_db],
                conditions={"StringEquals": {f"rds:db-tag/{MANAGED_TAG}": "true"}},
            )
        )
        for name in ("describe_instance", "delete_instance", "janitor", "keep_instance"):
            fn[name].add_to_role_policy(
                iam.PolicyStatement(
                    actions=["rds:DescribeDBInstances", "rds:ListTagsForResource"],
                    resources=[rds_arn("db", "*")],
                )
            )
        for name in ("delete_instance", "janitor"):
            fn[name].add_to_role_policy(
                iam.PolicyStatement(
                    actions=["rds:DeleteDBInstance"],
                    resources=[managed_db],
                    conditions={"StringEquals": {f"rds:db-tag/{MANAGED_TAG}": "true"}},
                )
            )
        fn["janitor"].add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:Scan",
                    "dynamodb:DeleteItem",
                ],
                resources=[self.slots.table_arn],
            )
        )
        fn["janitor"].add_environment("BACKPROOF_SLOTS_TABLE", self.slots.table_name)
        # Retention keeps the backups a running verification or restore holds a lock on.
        fn["retention"].add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:Scan"], resources=[self.slots.table_arn])
        )
        fn["retention"].add_environment("BACKPROOF_SLOTS_TABLE", self.slots.table_name)
        fn["janitor"].add_environment("BACKPROOF_SLOTS_KEY", SLOTS_KEY)

    def check_signatures(self, name: str, signing_key: kms.IKey) -> None:
        """Let function `name` check signatures made with the signing key (never sign)."""
        self.fn[name].add_environment("BACKPROOF_SIGNING_KMS_KEY_ID", signing_key.key_arn)
        self.fn[name].add_to_role_policy(
            iam.PolicyStatement(
                actions=["kms:GetPublicKey", "kms:Verify"], resources=[signing_key.key_arn]
            )
        )

    def allow_ways_back(self, bucket: s3.IBucket, key: kms.IKey, sources: list[str]) -> None:
        """RDS's own ways back: native_plan reads RDS and the store, restore_instance restores
        the configured source instances (at a time, or a snapshot) into temporary instances
        only; validate_restore reads restore records and safety backups (a rollback)."""
        stack = Stack.of(self)

        def rds_arn(resource: str, name: str) -> str:
            return stack.format_arn(
                service="rds",
                resource=resource,
                resource_name=name,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )

        plan, restore = self.fn["native_plan"], self.fn["restore_instance"]
        plan.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "rds:DescribeDBInstances",
                    "rds:DescribeDBSnapshots",
                    "rds:DescribeDBInstanceAutomatedBackups",
                ],
                resources=[
                    rds_arn("db", "*"),
                    rds_arn("snapshot", "*"),
                    rds_arn("auto-backup", "*"),
                ],
            )
        )
        plan.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectTagging"],
                resources=[bucket.arn_for_objects("backups/*")],
            )
        )
        records = [bucket.arn_for_objects("restores/*"), bucket.arn_for_objects("safety/*")]
        self.fn["validate_restore"].add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObject", "s3:GetObjectTagging"], resources=records)
        )
        for statement in (
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn]),
            iam.PolicyStatement(actions=["kms:Decrypt"], resources=[key.key_arn]),
        ):
            plan.add_to_role_policy(statement)
        managed_db = rds_arn("db", f"{INSTANCE_PREFIX}*")
        new_instance = [
            managed_db,
            *[rds_arn("subgrp", name) for name in self.subnet_groups],
            rds_arn("pg", "default.*"),
            rds_arn("og", "default:*"),
        ]
        tagged = {"StringEquals": {f"aws:RequestTag/{MANAGED_TAG}": "true"}}
        if sources:  # only the configured source instances, only into tagged bp-* instances
            restore.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["rds:RestoreDBInstanceToPointInTime"],
                    resources=[*[rds_arn("db", s) for s in sources], *new_instance],
                    conditions=tagged,
                )
            )
        restore.add_to_role_policy(
            iam.PolicyStatement(
                actions=["rds:RestoreDBInstanceFromDBSnapshot", "rds:AddTagsToResource"],
                resources=[rds_arn("snapshot", "*"), *new_instance],
                conditions=tagged,
            )
        )
        restore.add_to_role_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:CreateSecret", "secretsmanager:TagResource"],
                resources=[
                    stack.format_arn(
                        service="secretsmanager",
                        resource="secret",
                        resource_name="rds!*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        # A restore keeps its source's storage key: RDS needs a grant on that key, whichever
        # it is, and only for RDS's own use.
        keys = stack.format_arn(service="kms", resource="key", resource_name="*")
        via_rds = {"kms:ViaService": f"rds.{stack.region}.amazonaws.com"}
        restore.add_to_role_policy(
            iam.PolicyStatement(
                actions=["kms:CreateGrant"],
                resources=[keys],
                conditions={
                    "StringEquals": via_rds,
                    "Bool": {"kms:GrantIsForAWSResource": "true"},
                },
            )
        )
        restore.add_to_role_policy(
            iam.PolicyStatement(
                actions=["kms:DescribeKey"], resources=[keys], conditions={"StringEquals": via_rds}
            )
        )

    def watch_freshness(
        self,
        databases: list[str],
        instances: dict[str, tuple[int, int]] | None = None,
        member_alarms: dict[str, Any] | None = None,
    ) -> None:
        """The freshness function reads these databases' backups from the store. `instances`
        (name -> hours between their most frequent backups, alarm threshold in seconds) are
        read database by database, and `member_alarms` says how it makes one alarm per
        database found (handlers/member_alarms.py): it may manage only alarms named with that
        prefix."""
        fn = self.fn["freshness"]
        fn.add_environment("BACKPROOF_DATABASES", ",".join(databases))
        if not instances:
            return
        fn.add_environment(
            "BACKPROOF_INSTANCES",
            ",".join(f"{n}={h}/{t}" for n, (h, t) in sorted(instances.items())),
        )
        if member_alarms is None:
            return
        fn.add_environment("BACKPROOF_MEMBER_ALARMS", json.dumps(member_alarms))
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "cloudwatch:DescribeAlarms",
                    "cloudwatch:PutMetricAlarm",
                    "cloudwatch:DeleteAlarms",
                ],
                resources=[member_alarm_arn(Stack.of(self), member_alarms["prefix"])],
            )
        )

    def allow_notify(
        self, topic: sns.ITopic, *, webhook_secret_arn: str | None, notify_success: bool
    ) -> None:
        """The notify function publishes to the (KMS-encrypted) topic and reads the chat
        webhook's secret, when one is configured."""
        fn = self.fn["notify"]
        fn.add_environment("BACKPROOF_TOPIC_ARN", topic.topic_arn)
        fn.add_environment("BACKPROOF_NOTIFY_SUCCESS", "true" if notify_success else "false")
        fn.add_to_role_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn])
        )
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[self.key.key_arn]
            )
        )
        if webhook_secret_arn:
            fn.add_environment("BACKPROOF_CHAT_WEBHOOK_SECRET_ARN", webhook_secret_arn)
            fn.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"], resources=[webhook_secret_arn]
                )
            )

    def allow_janitor_to_describe(self, state_machine_arn: str) -> None:
        """The janitor frees slots held by verify executions that are no longer running."""
        stack = Stack.of(self)
        name = stack.split_arn(state_machine_arn, ArnFormat.COLON_RESOURCE_NAME).resource_name
        executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.fn["janitor"].add_to_role_policy(
            iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[executions])
        )


def member_alarm_arn(stack: Stack, prefix: str) -> str:
    """The alarms the freshness function may manage: those named with `prefix`."""
    return stack.format_arn(
        service="cloudwatch",
        resource="alarm",
        resource_name=f"{prefix}*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
