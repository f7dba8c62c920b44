"""EventBridge Scheduler: one schedule per database and tier, the janitor's, and the freshness
function's (every 15 minutes, on the quarter hour, so each 15-minute alarm period gets one)."""

from __future__ import annotations

from aws_cdk import Duration, Stack, TimeZone
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .config import Config

# On the quarter hour (UTC): one data point early in each 15-minute alarm period.
FRESHNESS_SCHEDULE = "cron(0/15 * * * ? *)"


def backup_payload(database: str, tier: str) -> dict[str, str]:
    """What a backup schedule sends; `events/schedule-backup.json` is one of these."""
    return {"database": database, "tier": tier}


class Schedules(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        backup: sfn.IStateMachine,
        janitor: sfn.IStateMachine,
        native: sfn.IStateMachine,
        freshness: lambda_.IFunction,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        group = scheduler.ScheduleGroup(
            self, "Group", schedule_group_name=f"backproof-{config.deployment}"
        )
        self.schedules: dict[tuple[str, str], scheduler.Schedule] = {}
        for db in config.databases:
            for tier, sched in db.schedules.items():
                self.schedules[(db.name, tier)] = scheduler.Schedule(
                    self,
                    f"Backup-{db.name}-{tier}",
                    schedule_group=group,
                    description=f"backproof {tier} backup of {db.name}",
                    schedule=scheduler.ScheduleExpression.expression(
                        sched.cron, TimeZone.of(sched.time_zone)
                    ),
                    target=targets.StepFunctionsStartExecution(
                        backup,
                        input=scheduler.ScheduleTargetInput.from_object(
                            backup_payload(db.name, tier)
                        ),
                        retry_attempts=3,
                        max_event_age=Duration.hours(1),
                    ),
                    key=key,
                )
        # RDS's own ways back, per database where configured: the newest snapshot, the latest
        # restorable time; each restored into a temporary instance, checked and deleted.
        for db in config.databases:
            for mode, when in (
                ("snapshot", db.verify_snapshots),
                ("point_in_time", db.verify_point_in_time),
            ):
                if when is None:
                    continue
                payload = {"database": db.name, "mode": mode}
                if mode == "point_in_time":
                    payload["time"] = "latest"
                self.schedules[(db.name, mode)] = scheduler.Schedule(
                    self,
                    f"WayBack-{db.name}-{mode.replace('_', '-')}",
                    schedule_group=group,
                    description=f"backproof: verify the {mode.replace('_', '-')} way back of "
                    f"{db.name}",
                    schedule=scheduler.ScheduleExpression.expression(
                        when.cron, TimeZone.of(when.time_zone)
                    ),
                    target=targets.StepFunctionsStartExecution(
                        native,
                        input=scheduler.ScheduleTargetInput.from_object(payload),
                        retry_attempts=3,
                        max_event_age=Duration.hours(1),
                    ),
                    key=key,
                )
        self.janitor = scheduler.Schedule(
            self,
            "Janitor",
            schedule_group=group,
            description="backproof janitor: delete expired temporary instances",
            schedule=scheduler.ScheduleExpression.expression(
                config.janitor_schedule, TimeZone.ETC_UTC
            ),
            target=targets.StepFunctionsStartExecution(
                janitor,
                input=scheduler.ScheduleTargetInput.from_object({}),
                retry_attempts=3,
                max_event_age=Duration.hours(1),
            ),
            key=key,
        )
        # Its own role (cdk-nag acknowledges the grant's ARN:* on it by name, in infra/nag.py).
        self.freshness_role = iam.Role(
            self,
            "FreshnessInvoker",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            ),
            description="backproof: EventBridge Scheduler invokes the freshness function",
        )
        self.freshness = scheduler.Schedule(
            self,
            "Freshness",
            schedule_group=group,
            description="backproof freshness: seconds since each database's newest verified backup",
            schedule=scheduler.ScheduleExpression.expression(FRESHNESS_SCHEDULE, TimeZone.ETC_UTC),
            target=targets.LambdaInvoke(
                freshness,
                input=scheduler.ScheduleTargetInput.from_object({}),
                role=self.freshness_role,
                retry_attempts=2,
                max_event_age=Duration.minutes(10),
            ),
            key=key,
        )
