"""Dump and restore compute: an ECS cluster and one Fargate task definition per task action.

Dumps and restores run as Fargate tasks, never in Lambda: a database of any size fits
(Lambda stops at 15 minutes). The image is built by `cdk deploy` from
`functions/task/Dockerfile`: the newest PostgreSQL client plus the backproof package.

Each action the container entry point runs (`functions/task/entry.py`, ACTIONS) has its own
task definition and task role, allowed exactly what that action's engine job reads and writes
(store/layout.py and store/records.py name the keys): a backup cannot write evidence, a
verification cannot write an archive or a manifest, a restore never reads a backup secret. The
image, the log group and the execution role (pull the image, write logs) are shared.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, RemovalPolicy, Stack, Tags
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
# The first command argument the workflows pass (functions/task/entry.py ACTIONS), and what each
# task does, in its role's description.
TASK_ACTIONS = {
    "backup": "dumps a configured source into backups/",
    "verify": "restores a backup into a temporary instance, checks it, writes the evidence",
    "restore": "restores a backup for an operator, after a safety backup of the target",
    "native": "checks an instance restored from an RDS snapshot or point in time",
}
# On each task definition and, propagated, on each task it runs: which action it is for.
ACTION_TAG = "backproof:task-action"
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
    ".grimp_cache",
    ".import_linter_cache",
    # PostgreSQL builds and the regression database the tests download (hundreds of MB).
    ".cache",
]
# Where a backup's verification runs keep their evidence (store/layout.py VERIFICATIONS_DIR):
# written only by the verify task.
EVIDENCE = "backups/*/verifications/*"
# S3 writes that create or change an object; PutObject with a Tagging header or an Object Lock
# retention also needs the tagging or retention action.
OBJECT_WRITES = ["s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectRetention"]


class DumpRestoreCompute(Construct):
    """Cluster; per task action a task definition and a role allowed what that action does."""

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
        tasks = iam.ServicePrincipal("ecs-tasks.amazonaws.com")
        self.execution_role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=tasks,
            description="backproof: pulls the dump/restore image and writes the tasks' logs",
        )
        # One image asset for every task definition (ContainerImage.from_asset would make one
        # per definition, each hashing the build context again).
        image = ecs.ContainerImage.from_docker_image_asset(
            ecr_assets.DockerImageAsset(
                self,
                "Image",
                directory=str(REPO_ROOT),
                file="functions/task/Dockerfile",
                platform=ecr_assets.Platform.LINUX_ARM64,
                exclude=IMAGE_EXCLUDES,
            )
        )
        # Only non-secret settings; the task reads connection secrets itself at run time.
        environment = {
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
        }
        self.task_roles: dict[str, iam.Role] = {}
        self.task_definitions: dict[str, ecs.FargateTaskDefinition] = {}
        for action, what in TASK_ACTIONS.items():
            role = iam.Role(
                self,
                f"{action.title()}TaskRole",
                assumed_by=tasks,
                description=f"backproof: the {action} task, which {what}",
            )
            definition = ecs.FargateTaskDefinition(
                self,
                f"{action.title()}Task",
                cpu=1024,
                memory_limit_mib=4096,
                ephemeral_storage_gib=EPHEMERAL_STORAGE_GIB,
                runtime_platform=ecs.RuntimePlatform(
                    cpu_architecture=ecs.CpuArchitecture.ARM64,
                    operating_system_family=ecs.OperatingSystemFamily.LINUX,
                ),
                task_role=role,
                execution_role=self.execution_role,
            )
            definition.add_container(
                CONTAINER_NAME,
                image=image,
                logging=ecs.LogDrivers.aws_logs(stream_prefix=action, log_group=self.log_group),
                environment=environment,
            )
            Tags.of(definition).add(ACTION_TAG, action)
            self.task_roles[action] = role
            self.task_definitions[action] = definition
        grants = _TaskGrants(self, bucket, key, signing_key, object_lock=bool(object_lock))
        grants.backup(self.task_roles["backup"], source_secret_arns)
        grants.verify(self.task_roles["verify"])
        grants.restore(self.task_roles["restore"], restore_secret_arns or [])
        grants.native(self.task_roles["native"], source_secret_arns)

    @property
    def signing_roles(self) -> list[iam.IRole]:
        """The task roles that sign with the signing key: manifests (backup, and a restore's
        safety backup) and verification evidence."""
        return [self.task_roles[action] for action in ("backup", "verify", "restore")]


class _TaskGrants:
    """What each task action's role may do, read off the engine job it runs."""

    def __init__(
        self,
        scope: Construct,
        bucket: s3.IBucket,
        key: kms.IKey,
        signing_key: kms.IKey | None,
        *,
        object_lock: bool,
    ) -> None:
        self.stack = Stack.of(scope)
        self.bucket, self.key, self.signing_key = bucket, key, signing_key
        self.object_lock = object_lock

    def backup(self, role: iam.IRole, source_secret_arns: list[str]) -> None:
        """`backproof backup`: a multipart upload of the archive, roles.json and the manifest
        (and its signature) into the new backup's directory, all tagged with the tier; a HEAD
        of the uploaded archive; HeadBucket (ListBucket) before anything is dumped."""
        self._writes(role, ["backups/*"], tagged=True, multipart=True)
        # Evidence is written only through the verify task: no backup can vouch for itself.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=OBJECT_WRITES,
                resources=[self.bucket.arn_for_objects(EVIDENCE)],
            )
        )
        self._reads(role, ["backups/*"])
        self._bucket(role, encryption_configuration=False)
        # --kms-key-id names the key: the store checks it (DescribeKey) before writing.
        self._data_key(role, describe=True)
        self._secrets(role, source_secret_arns)
        self._signs(role)
        self._reports(role)

    def verify(self, role: iam.IRole) -> None:
        """`backproof verify --target-url`: reads the backup (manifest, archive, roles.json,
        earlier evidence), restores it into the temporary instance the workflow created, and
        writes this run's evidence (and its signature) beside it; nothing else."""
        self._reads(role, ["backups/*"])
        self._writes(role, [EVIDENCE], tagged=True, multipart=False)
        # The evidence is written with the backup's own key (DescribeKey checks it), else the
        # bucket's default encryption.
        self._bucket(role, encryption_configuration=True)
        self._data_key(role, describe=True)
        self._temporary_instance_secrets(role)
        self._signs(role)
        self._reports(role)

    def restore(self, role: iam.IRole, restore_secret_arns: list[str]) -> None:
        """`backproof restore`: reads the backup (or, for a rollback, the safety backup and the
        rolled-back restore's record), takes a safety backup of a non-empty target into safety/
        (tagged with its tier), and writes the restore's record under restores/ (untagged)."""
        self._reads(role, ["backups/*", "safety/*", "restores/*"])
        self._writes(role, ["safety/*"], tagged=True, multipart=True)
        self._writes(role, ["restores/*"], tagged=False, multipart=False)
        # No --kms-key-id: the safety backup and the record use the bucket's default key.
        self._bucket(role, encryption_configuration=True)
        self._data_key(role, describe=False)
        # The declared restore targets' own secrets (never a backup secret), and the master
        # secret of a new instance restored into.
        self._secrets(role, restore_secret_arns)
        self._temporary_instance_secrets(role)
        self._signs(role)
        self._reports(role)

    def native(self, role: iam.IRole, source_secret_arns: list[str]) -> None:
        """`backproof verify-snapshot` / `pitr --target-url`: reads the nearest logical backup's
        manifest, checks the instance the workflow restored, writes the evidence under
        snapshots/ or point-in-time/ (untagged). Nothing is signed."""
        self._reads(role, ["backups/*"])
        self._writes(role, ["snapshots/*", "point-in-time/*"], tagged=False, multipart=False)
        self._bucket(role, encryption_configuration=True)
        self._data_key(role, describe=False)
        self._temporary_instance_secrets(role)
        # The entry point reads only `dbname` from the database's source secret, but Secrets
        # Manager grants the whole secret.
        self._secrets(role, source_secret_arns)
        self._reports(role)

    # -- the pieces ---------------------------------------------------------------------------
    def _objects(self, prefixes: list[str]) -> list[str]:
        return [self.bucket.arn_for_objects(prefix) for prefix in prefixes]

    def _reads(self, role: iam.IRole, prefixes: list[str]) -> None:
        # GetObject also authorizes HeadObject.
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=self._objects(prefixes))
        )

    def _writes(
        self, role: iam.IRole, prefixes: list[str], *, tagged: bool, multipart: bool
    ) -> None:
        """PutObject under `prefixes`; with `tagged` the tier tag (and, with Object Lock per
        tier, the tier's retention) every such object is written with; with `multipart` the
        abort of an upload that failed."""
        actions = ["s3:PutObject"]
        if tagged:
            actions.append("s3:PutObjectTagging")
            if self.object_lock:  # writing an object with a retention date needs this too
                actions.append("s3:PutObjectRetention")
        if multipart:
            actions.append("s3:AbortMultipartUpload")
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=actions, resources=self._objects(prefixes))
        )

    def _bucket(self, role: iam.IRole, *, encryption_configuration: bool) -> None:
        """ListBucket: find backups (and HeadBucket before a dump); GetEncryptionConfiguration:
        a store given no key writes with the bucket's default key."""
        actions = ["s3:ListBucket"]
        if encryption_configuration:
            actions.append("s3:GetEncryptionConfiguration")
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=actions, resources=[self.bucket.bucket_arn])
        )

    def _data_key(self, role: iam.IRole, *, describe: bool) -> None:
        """The bucket's key: data keys to write (and to upload parts), decrypt to read."""
        actions = ["kms:GenerateDataKey", "kms:Decrypt"]
        if describe:
            actions.append("kms:DescribeKey")
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=actions, resources=[self.key.key_arn])
        )

    def _secrets(self, role: iam.IRole, secret_arns: list[str]) -> None:
        if secret_arns:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"], resources=sorted(set(secret_arns))
                )
            )

    def _temporary_instance_secrets(self, role: iam.IRole) -> None:
        """The master secrets RDS manages for temporary instances (RDS names them and tags
        them with the instance they belong to)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"],
                resources=[
                    self.stack.format_arn(
                        service="secretsmanager",
                        resource="secret",
                        resource_name="rds!db-*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
                conditions={
                    "StringLike": {
                        "secretsmanager:ResourceTag/aws:rds:primaryDBInstanceArn": (
                            self.stack.format_arn(
                                service="rds",
                                resource="db",
                                resource_name=f"{INSTANCE_PREFIX}*",
                                arn_format=ArnFormat.COLON_RESOURCE_NAME,
                            )
                        )
                    }
                },
            )
        )

    def _signs(self, role: iam.IRole) -> None:
        """Sign with the signing key (kms:Sign), and read its public half to check a manifest's
        signature locally; the key policy denies kms:Sign to every other principal."""
        if self.signing_key is not None:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["kms:Sign", "kms:GetPublicKey"],
                    resources=[self.signing_key.key_arn],
                )
            )

    def _reports(self, role: iam.IRole) -> None:
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
