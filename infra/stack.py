"""The one stack: it composes the constructs and holds no resources of its own."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from .backup_workflow import BackupWorkflow
from .compute import CONTAINER_NAME, DumpRestoreCompute
from .config import TIER_HOURS, Config
from .fragments import Resources
from .functions import SLOTS_KEY, Functions
from .monitoring import (
    FRESHNESS_PERIOD,
    FRESHNESS_PERIODS,
    FRESHNESS_SERVICE,
    Monitoring,
    Notifications,
    allowed_unverified_seconds,
    member_alarm_prefix,
)
from .nag import acknowledge, acknowledge_replication, acknowledge_ways_back
from .native import NativeVerifyWorkflow
from .networking import Networking
from .schedules import Schedules
from .settings import DatabaseSettings
from .storage import BackupStorage
from .task_stopper import TaskStopper
from .workflows import JanitorWorkflow, RestoreWorkflow, VerifyWorkflow

LOG_RETENTION = logs.RetentionDays.THREE_MONTHS


class BackproofStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: Config, layer_dir: Path, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        storage = BackupStorage(
            self,
            "Storage",
            object_lock_days=config.object_lock_days,
            object_lock=bool(config.object_lock),
        )
        self._allow_logs(storage.key)
        notifications = Notifications(
            self, "Notifications", key=storage.key, emails=config.alarm_emails
        )
        networking = Networking(
            self, "Networking", networks=config.networks(), deployment=config.deployment
        )
        settings = DatabaseSettings(self, "Settings", config=config, vpcs=networking.vpcs)
        compute = DumpRestoreCompute(
            self,
            "Compute",
            bucket=storage.bucket,
            key=storage.key,
            source_secret_arns=[db.secret_arn for db in config.databases],
            restore_secret_arns=sorted(
                {t.secret_arn for db in config.databases for t in db.restore_targets}
            ),
            log_retention=LOG_RETENTION,
            signing_key=storage.signing_key,
            object_lock=config.object_lock_spec,
        )
        storage.only_signers(compute.signing_roles)
        if config.replica:
            replication = storage.replicate(
                **asdict(config.replica),
                object_lock=bool(config.object_lock_days or config.object_lock),
            )
            acknowledge_replication(replication, storage.bucket, config.replica.bucket_arn)
        functions = Functions(
            self,
            "Functions",
            deployment=config.deployment,
            bucket=storage.bucket,
            key=storage.key,
            layer_dir=layer_dir,
            log_retention=LOG_RETENTION,
            max_concurrent_verifications=config.max_concurrent_verifications,
            subnet_groups=[vpc.subnet_group_name for vpc in networking.vpcs.values()],
        )
        instances = {
            db.name: (
                min(TIER_HOURS[tier] for tier in db.schedules),
                allowed_unverified_seconds(db),
            )
            for db in config.databases
            if db.databases is not None
        }
        functions.watch_freshness(
            [db.name for db in config.databases],
            instances,
            member_alarms={
                "prefix": member_alarm_prefix(config.deployment),
                "topic_arn": notifications.topic.topic_arn,
                "service": FRESHNESS_SERVICE,
                "period_s": int(FRESHNESS_PERIOD.to_seconds()),
                "periods": FRESHNESS_PERIODS,
            }
            if instances
            else None,
        )
        functions.allow_notify(
            notifications.topic,
            webhook_secret_arn=config.chat_webhook_secret_arn,
            notify_success=config.notify_success,
        )
        functions.read_settings("validate_restore", settings.prefix, settings.arn_prefix)
        # RDS's own ways back: only the configured source instances may be restored.
        functions.read_settings("native_plan", settings.prefix, settings.arn_prefix)
        functions.allow_ways_back(
            storage.bucket,
            storage.key,
            sorted({db.rds_instance_id for db in config.databases if db.rds_instance_id}),
        )
        # The integrity step checks the manifest's signature before an instance is created.
        functions.check_signatures("integrity", storage.signing_key)
        res = Resources(
            functions=dict(functions.fn),
            cluster_arn=compute.cluster_arn,
            task_definition_arns={
                action: definition.task_definition_arn
                for action, definition in compute.task_definitions.items()
            },
            task_roles=compute.task_roles,
            execution_role=compute.execution_role,
            container_name=CONTAINER_NAME,
            topic=notifications.topic,
            settings_prefix=settings.prefix,
            settings_arn_prefix=settings.arn_prefix,
            slots_table=functions.slots,
            slots_key=SLOTS_KEY,
            max_concurrent_verifications=config.max_concurrent_verifications,
        )
        verify = VerifyWorkflow(
            self, "Verify", res=res, key=storage.key, log_retention=LOG_RETENTION
        )
        backup = BackupWorkflow(
            self,
            "Backup",
            res=res,
            verify=verify.state_machine,
            key=storage.key,
            log_retention=LOG_RETENTION,
        )
        native = NativeVerifyWorkflow(
            self, "Native", res=res, key=storage.key, log_retention=LOG_RETENTION
        )
        restore = RestoreWorkflow(
            self,
            "Restore",
            res=res,
            native=native.state_machine,
            key=storage.key,
            log_retention=LOG_RETENTION,
        )
        janitor = JanitorWorkflow(
            self, "Janitor", res=res, key=storage.key, log_retention=LOG_RETENTION
        )
        functions.allow_janitor_to_describe(verify.state_machine.state_machine_arn)
        functions.allow_janitor_to_describe(native.state_machine.state_machine_arn)
        self.machines = {
            "backup": backup.state_machine,
            "verify": verify.state_machine,
            "restore": restore.state_machine,
            "janitor": janitor.state_machine,
            "native": native.state_machine,
        }
        TaskStopper(
            self,
            "TaskStopper",
            function=functions.fn["stop_tasks"],
            cluster_arn=compute.cluster_arn,
            machines=[
                backup.state_machine,
                verify.state_machine,
                restore.state_machine,
                native.state_machine,
            ],
        )
        schedules = Schedules(
            self,
            "Schedules",
            config=config,
            backup=backup.state_machine,
            janitor=janitor.state_machine,
            native=native.state_machine,
            freshness=functions.fn["freshness"],
            key=storage.key,
        )
        Monitoring(
            self, "Monitoring", config=config, topic=notifications.topic, machines=self.machines
        )
        # What an operator looks up after deploying: where backups are, which machines to start.
        CfnOutput(
            self,
            "BackupStore",
            value=f"s3://{storage.bucket.bucket_name}",
            description="--store for the backproof command",
        )
        CfnOutput(
            self,
            "SigningKey",
            value=storage.signing_key.key_arn,
            description="--signing-kms-key-id for the backproof command (checks signatures; "
            "only the backup, verify and restore tasks may sign)",
        )
        for name, machine in self.machines.items():
            CfnOutput(self, f"{name.title()}StateMachine", value=machine.state_machine_arn)
        acknowledge(
            self,
            functions=functions.fn,
            task_roles=compute.task_roles,
            execution_role=compute.execution_role,
            bucket=storage.bucket,
            machines=self.machines,
            task_definitions=compute.task_definitions,
            verify_machine=verify.state_machine,
            cluster=compute.cluster,
            settings_prefix=settings.prefix,
            freshness_schedule_role=schedules.freshness_role,
            member_alarm_prefix=member_alarm_prefix(config.deployment) if instances else None,
        )
        acknowledge_ways_back(
            self,
            functions=functions.fn,
            bucket=storage.bucket,
            native_machine=native.state_machine,
            restore_machine=restore.state_machine,
            settings_prefix=settings.prefix,
        )

    def _allow_logs(self, key: Any) -> None:
        """Encrypted log groups: CloudWatch Logs may use the key for this account's groups only."""
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:DescribeKey",
                ],
                resources=["*"],  # in a key policy "*" means this key
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:*"
                        )
                    }
                },
            )
        )
