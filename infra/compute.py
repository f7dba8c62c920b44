"""Dump and restore compute: an ECS cluster and one Fargate task definition.

Dumps and restores run as Fargate tasks, never in Lambda: a database of any size fits
(Lambda stops at 15 minutes). The image is built by `cdk deploy` from
`functions/task/Dockerfile`: the newest PostgreSQL client plus the backproof package.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from backproof.contract import INSTANCE_PREFIX

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTAINER_NAME = "task"
# Fargate's maximum; pg_restore -j needs the archive as a seekable file on local disk.
EPHEMERAL_STORAGE_GIB = 200
# The docker build context is the repository; only what the image copies is sent.
IMAGE_EXCLUDES = [
    ".git",
    ".venv",
    "node_modules",
    "cdk.out",
    "layers/build",
    "bench",
    "tests",
    "**/__pycache__",
    "**/*.egg-info",
    ".ruff_cache",
    ".mypy_cache",
    ".pytest_cache",
]


class DumpRestoreCompute(Construct):
    """Cluster, task definition, and a task role allowed exactly what the task does."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        key: kms.IKey,
        source_secret_arns: list[str],
        log_retention: logs.RetentionDays,
        restore_secret_arns: list[str] | None = None,
        signing_key: kms.IKey | None = None,
        object_lock: str = "",
    ) -> None:
        super().__init__(scope, construct_id)
        self.cluster = ecs.CfnCluster(
            self,
            "Cluster",
            cluster_settings=[
                ecs.CfnCluster.ClusterSettingsProperty(name="containerInsights", value="enabled")
            ],
        )
        self.cluster_arn = self.cluster.attr_arn
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=log_retention,
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=1024,
            memory_limit_mib=4096,
            ephemeral_storage_gib=EPHEMERAL_STORAGE_GIB,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.task_definition.add_container(
            CONTAINER_NAME,
            image=ecs.ContainerImage.from_asset(
                str(REPO_ROOT),
                file="functions/task/Dockerfile",
                platform=ecr_assets.Platform.LINUX_ARM64,
                exclude=IMAGE_EXCLUDES,
            ),
            logging=ecs.LogDrivers.aws_logs(stream_prefix="task", log_group=self.log_group),
            # Only non-secret settings; the task reads connection secrets itself at run time.
            environment={
                "BACKPROOF_STORE": f"s3://{bucket.bucket_name}",
                "BACKPROOF_KMS_KEY_ID": key.key_arn,
                # The backproof command signs manifests and evidence with it, and checks a
                # manifest's signature before restoring (--signing-kms-key-id's variable).
                **(
                    {"BACKPROOF_SIGNING_KMS_KEY_ID": signing_key.key_arn}
                    if signing_key is not None
                    else {}
                ),
                # Object Lock per tier on every object written (store/locking.py).
                **({"BACKPROOF_OBJECT_LOCK": object_lock} if object_lock else {}),
            },
        )
        if object_lock:  # writing an object with a retention date needs this too
            self.task_definition.task_role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["s3:PutObjectRetention"],
                    resources=[
                        bucket.arn_for_objects("backups/*"),
                        bucket.arn_for_objects("safety/*"),
                    ],
                )
            )
        # Backup secrets of the sources and the restore secrets of declared restore targets.
        secrets = sorted({*source_secret_arns, *(restore_secret_arns or [])})
        self._grant(self.task_definition.task_role, bucket, key, secrets)
        if signing_key is not None:
            self.task_definition.task_role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["kms:Sign", "kms:Verify", "kms:GetPublicKey"],
                    resources=[signing_key.key_arn],
                )
            )

    @property
    def task_role(self) -> iam.IRole:
        return self.task_definition.task_role

    @property
    def execution_role(self) -> iam.IRole:
        role = self.task_definition.execution_role
        assert role is not None
        return role

    def _grant(
        self, role: iam.IRole, bucket: s3.IBucket, key: kms.IKey, secret_arns: list[str]
    ) -> None:
        stack = Stack.of(self)
        # Write archives and manifests, read them back to restore, list to resolve "latest".
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "s3:PutObject",
                    "s3:PutObjectTagging",
                    "s3:GetObject",
                    "s3:GetObjectTagging",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                # a database's backups, and the safety backups of restore targets
                resources=[bucket.arn_for_objects("backups/*"), bucket.arn_for_objects("safety/*")],
            )
        )
        # Records beside the backups (store/records.py): each restore's record (a rollback
        # reads it), and the evidence of verified RDS snapshots and point-in-time restores.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:GetObject"],
                resources=[
                    bucket.arn_for_objects(f"{prefix}/*")
                    for prefix in ("restores", "snapshots", "point-in-time")
                ],
            )
        )
        # ListBucket: find backups; GetEncryptionConfiguration: a safety backup before an
        # operator restore writes with the bucket's default key.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket", "s3:GetEncryptionConfiguration"],
                resources=[bucket.bucket_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"],
                resources=[key.key_arn],
            )
        )
        # The configured source connection secrets, and the master secrets RDS manages for
        # temporary instances (RDS tags them with the instance they belong to).
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"], resources=sorted(secret_arns)
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"],
                resources=[
                    stack.format_arn(
                        service="secretsmanager",
                        resource="secret",
                        resource_name="rds!db-*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
                conditions={
                    "StringLike": {
                        "secretsmanager:ResourceTag/aws:rds:primaryDBInstanceArn": stack.format_arn(
                            service="rds",
                            resource="db",
                            resource_name=f"{INSTANCE_PREFIX}*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )
        # The task reports its result to the workflow that started it (.waitForTaskToken).
        # SendTask* authorizes by the token, not by a resource ARN, so "*" is the only option.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "states:SendTaskSuccess",
                    "states:SendTaskFailure",
                    "states:SendTaskHeartbeat",
                ],
                resources=["*"],
            )
        )
