"""Alarms to SNS and a dashboard: every failure reaches a person with a next step.

Metric names are emitted by `functions/handlers/record.py`, `janitor.py` and `freshness.py`
(Powertools EMF, namespace `Backproof`, dimensions service + database).
"""

from __future__ import annotations

from collections.abc import Callable

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from backproof.contract import (
    METRIC_BACKUP_BYTES,
    METRIC_INSTANCES_NOT_DELETED,
    METRIC_LEAKED_INSTANCES,
    METRIC_RECOVERY_POINT_AGE,
    METRIC_RESTORE_SECONDS,
    METRIC_SECONDS_SINCE_VERIFIED,
    METRICS_NAMESPACE,
)

from .config import TIER_HOURS, VERIFY_SLACK_HOURS, Config, Database

RECORD_SERVICE = "backproof-record"
JANITOR_SERVICE = "backproof-janitor"
FRESHNESS_SERVICE = "backproof-freshness"
# The freshness function publishes every 15 minutes; its alarm fires after two periods in a
# row breach (or have no data), so one late invocation never pages, a stopped one does.
FRESHNESS_PERIOD = Duration.minutes(15)
FRESHNESS_PERIODS = 2
AT_LEAST = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD


def member_alarm_prefix(deployment: str) -> str:
    """Names of the NoVerifiedBackup alarms the freshness function makes for the databases it
    finds in an instance (functions/handlers/member_alarms.py); it may manage only these."""
    return f"backproof-{deployment}-NoVerifiedBackup-"


def allowed_unverified_seconds(db: Database) -> int:
    """The NoVerifiedBackup alarm's threshold on SecondsSinceVerifiedBackup."""
    return allowed_unverified_hours(db) * 3600


def allowed_unverified_hours(db: Database) -> int:
    """How long a database may go without a newly verified backup before someone is told."""
    return min(TIER_HOURS[tier] for tier in db.schedules) + VERIFY_SLACK_HOURS


class Notifications(Construct):
    """The KMS-encrypted topic every alarm and workflow failure goes to."""

    def __init__(
        self, scope: Construct, construct_id: str, *, key: kms.IKey, emails: tuple[str, ...]
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self, "Topic", master_key=key, enforce_ssl=True, display_name="backproof alarms"
        )
        for email in emails:
            self.topic.add_subscription(subs.EmailSubscription(email))
        # CloudWatch alarms publish to the encrypted topic through the key.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # in a key policy "*" means this key
            )
        )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        topic: sns.ITopic,
        machines: dict[str, sfn.StateMachine],
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = topic
        action = cw_actions.SnsAction(topic)
        self.alarms: dict[str, cw.Alarm] = {}
        self.anomaly_alarms: dict[str, cw.CfnAlarm] = {}

        def alarm(
            cid: str,
            metric: cw.IMetric,
            description: str,
            *,
            threshold: float = 1,
            comparison: cw.ComparisonOperator = AT_LEAST,
            missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
            periods: int = 1,
        ) -> cw.Alarm:
            created = cw.Alarm(
                self,
                cid,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                datapoints_to_alarm=periods,
                comparison_operator=comparison,
                treat_missing_data=missing,
                alarm_description=description,
            )
            created.add_alarm_action(action)
            self.alarms[cid] = created
            return created

        five = Duration.minutes(5)
        for name, machine in machines.items():
            failed = cw.MathExpression(
                expression="failed + timedout + aborted",
                using_metrics={
                    "failed": machine.metric_failed(period=five, statistic="Sum"),
                    "timedout": machine.metric_timed_out(period=five, statistic="Sum"),
                    "aborted": machine.metric_aborted(period=five, statistic="Sum"),
                },
                period=five,
            )
            alarm(
                f"{name.title()}ExecutionFailed",
                failed,
                f"A {name} workflow execution failed, timed out or was aborted. Open the "
                "execution in "
                "the Step Functions console; its Fail state names the cause.",
            )

        def app_metric(
            metric: str, service: str, database: str | None, statistic: str, period: Duration
        ) -> cw.Metric:
            dims = {"service": service}
            if database:
                dims["database"] = database
            return cw.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=metric,
                dimensions_map=dims,
                statistic=statistic,
                period=period,
            )

        alarm(
            "InstanceLeaked",
            app_metric(METRIC_LEAKED_INSTANCES, JANITOR_SERVICE, None, "Sum", Duration.hours(1)),
            "The janitor found a temporary instance past its expiry and deleted it: a verify or "
            "restore execution did not clean up. Find the execution named in the instance's tags.",
        )

        alarm(
            "InstanceNotDeleted",
            app_metric(
                METRIC_INSTANCES_NOT_DELETED, JANITOR_SERVICE, None, "Sum", Duration.hours(1)
            ),
            "The janitor found an expired temporary instance it could not delete (refused by the "
            "engine's guard, by IAM, or by RDS). It keeps costing money and holds a copy of the "
            "data: the janitor's log names it and the reason; delete it by hand once understood.",
        )

        for db in config.databases:
            hours = allowed_unverified_hours(db)
            alarm(
                f"NoVerifiedBackup-{db.name}",
                app_metric(
                    METRIC_SECONDS_SINCE_VERIFIED,
                    FRESHNESS_SERVICE,
                    db.name,
                    "Maximum",
                    FRESHNESS_PERIOD,
                ),
                f"{db.name}: the newest verified backup is older than {hours} h (its most "
                "frequent schedule plus slack), or the freshness function stopped reporting "
                "(missing data breaches: a deleted schedule, a broken function, a region outage). "
                "Run `backproof status`, check the latest backup and verify executions for this "
                "database, and start a backup now if the schedule is broken.",
                threshold=allowed_unverified_seconds(db),
                comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                missing=cw.TreatMissingData.BREACHING,
                periods=FRESHNESS_PERIODS,
            )
            alarm(
                f"RtoOverTarget-{db.name}",
                app_metric(
                    METRIC_RESTORE_SECONDS, RECORD_SERVICE, db.name, "Maximum", Duration.days(1)
                ),
                f"{db.name}: the last verification restore took longer than the "
                f"{db.rto_target_minutes} min "
                "recovery target. Size the restore task (task_cpu/task_memory_mib) or revisit the "
                "target.",
                threshold=db.rto_target_minutes * 60,
                comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            )
            # Minimum over the day: an ad-hoc verification of an old backup (naturally old
            # data) does not page when the day's scheduled verification was fresh.
            alarm(
                f"RpoOverTarget-{db.name}",
                app_metric(
                    METRIC_RECOVERY_POINT_AGE, RECORD_SERVICE, db.name, "Minimum", Duration.days(1)
                ),
                f"{db.name}: the freshest verified recovery point of the day was older than the "
                f"{db.rpo_target_minutes} min recovery point target when its restore was checked. "
                "Back up more often, shorten the dump and the wait for a verification slot, or "
                "revisit the target.",
                threshold=db.rpo_target_minutes * 60,
                comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            )
            self._size_anomaly(
                db,
                app_metric(
                    METRIC_BACKUP_BYTES, RECORD_SERVICE, db.name, "Maximum", Duration.days(1)
                ),
            )
        self.dashboard = self._dashboard(config, machines, app_metric)

    def _size_anomaly(self, db: Database, metric: cw.Metric) -> None:
        """Backup size outside the band CloudWatch learned for this database."""
        created = cw.CfnAlarm(
            self,
            f"SizeAnomaly-{db.name}",
            alarm_description=(
                f"{db.name}: backup size is outside its usual band (a table emptied, or a "
                "sudden growth). Compare the last manifests' row counts with `backproof list`."
            ),
            comparison_operator="LessThanLowerOrGreaterThanUpperThreshold",
            evaluation_periods=1,
            threshold_metric_id="band",
            treat_missing_data="notBreaching",
            alarm_actions=[self.topic.topic_arn],
            metrics=[
                cw.CfnAlarm.MetricDataQueryProperty(
                    id="bytes",
                    metric_stat=cw.CfnAlarm.MetricStatProperty(
                        metric=cw.CfnAlarm.MetricProperty(
                            namespace=metric.namespace,
                            metric_name=metric.metric_name,
                            dimensions=[
                                cw.CfnAlarm.DimensionProperty(name=k, value=v)
                                for k, v in (metric.dimensions or {}).items()
                            ],
                        ),
                        period=86400,
                        stat="Maximum",
                    ),
                    return_data=True,
                ),
                cw.CfnAlarm.MetricDataQueryProperty(
                    id="band", expression="ANOMALY_DETECTION_BAND(bytes, 3)", return_data=True
                ),
            ],
        )
        self.anomaly_alarms[db.name] = created

    def _dashboard(
        self,
        config: Config,
        machines: dict[str, sfn.StateMachine],
        app_metric: Callable[[str, str, str | None, str, Duration], cw.Metric],
    ) -> cw.Dashboard:
        board = cw.Dashboard(self, "Dashboard", dashboard_name=f"backproof-{config.deployment}")
        board.add_widgets(
            cw.GraphWidget(
                title="Executions succeeded",
                width=12,
                left=[m.metric_succeeded(label=n) for n, m in machines.items()],
            ),
            cw.GraphWidget(
                title="Executions failed",
                width=12,
                left=[m.metric_failed(label=n) for n, m in machines.items()],
            ),
        )
        day = Duration.days(1)
        names = [db.name for db in config.databases]
        board.add_widgets(
            cw.GraphWidget(
                title="Backup size (bytes)",
                width=8,
                left=[
                    app_metric(METRIC_BACKUP_BYTES, RECORD_SERVICE, n, "Maximum", day)
                    for n in names
                ],
            ),
            cw.GraphWidget(
                title="Restore seconds (measured RTO)",
                width=8,
                left=[
                    app_metric(METRIC_RESTORE_SECONDS, RECORD_SERVICE, n, "Maximum", day)
                    for n in names
                ],
            ),
            cw.GraphWidget(
                title="Newest verified backup age (h; alarm above the line)",
                width=8,
                left=[
                    cw.MathExpression(
                        expression=f"age{i} / 3600",
                        using_metrics={
                            f"age{i}": app_metric(
                                METRIC_SECONDS_SINCE_VERIFIED,
                                FRESHNESS_SERVICE,
                                db.name,
                                "Maximum",
                                FRESHNESS_PERIOD,
                            )
                        },
                        label=db.name,
                        period=FRESHNESS_PERIOD,
                    )
                    for i, db in enumerate(config.databases)
                ],
                left_annotations=[
                    cw.HorizontalAnnotation(
                        value=allowed_unverified_hours(db), label=f"{db.name} allowed"
                    )
                    for db in config.databases
                ],
            ),
        )
        return board
