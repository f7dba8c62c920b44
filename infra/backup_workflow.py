"""The backup workflow: one database, or every matching database of an instance."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from backproof.contract import ERROR_VERIFICATION_FAILED

from .fragments import ERROR_PATH, TRANSIENT_TASK_ERRORS, Fragments, Resources
from .workflows import _machine

TASK_RETRY_INTERVAL = Duration.minutes(5)
TASK_RETRY_ATTEMPTS = 2


class BackupWorkflow(Construct):
    """resolve config -> dump task -> record -> verify (nested) -> retention."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        res: Resources,
        verify: sfn.IStateMachine,
        key: kms.IKey,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        f = Fragments(self, res)
        failed = f.failure("Backup", "backup")

        resolve = f.resolve_config("ResolveConfig")
        resolve.add_catch(failed, result_path=ERROR_PATH)
        request = _backup_request(self, "PrepareBackupRequest")
        dump = _dump(f, "Dump", "$.backup", failed)
        record = _record_backup(f, "RecordBackup", "$.backup")
        # Named after the database, so the console's list of verify runs reads well.
        start_verify = _start_verify(
            self,
            "Verify",
            verify,
            "$.backup.backup_id",
            sfn.JsonPath.format("{}-{}", sfn.JsonPath.string_at("$.database"), sfn.JsonPath.uuid()),
        )
        retention = _retention(f, "ApplyRetention")
        retention.add_catch(failed, result_path=ERROR_PATH)
        record.add_catch(start_verify, result_path="$.record_error")
        # A failed verification was already notified by the verify workflow; retention
        # still runs (it never deletes the newest verified backup), then this run fails.
        start_verify.add_catch(retention, result_path="$.verify_error")
        unverified = sfn.Fail(
            self,
            "BackupNotVerified",
            error=ERROR_VERIFICATION_FAILED,
            cause_path="$.verify_error.Cause",
        )
        outcome = (
            sfn.Choice(self, "BackupOutcome")
            .when(sfn.Condition.is_present("$.verify_error"), unverified)
            .otherwise(sfn.Succeed(self, "BackedUpAndVerified"))
        )
        one = request.next(dump).next(record).next(start_verify).next(retention).next(outcome)
        every = self._every_database(f, verify, failed)
        definition = resolve.next(
            sfn.Choice(self, "OneDatabaseOrEvery")
            .when(sfn.Condition.is_string("$.config.settings.databases"), every)
            .otherwise(one)
        )
        self.state_machine = _machine(
            self, "StateMachine", definition, key=key, log_retention=log_retention, fragments=f
        )

    def _every_database(
        self, f: Fragments, verify: sfn.IStateMachine, failed: sfn.IChainable
    ) -> sfn.IChainable:
        """An instance: one task backs up every database matching the pattern (listed afresh,
        so a new one is picked up), then each database is recorded, verified and pruned on its
        own, filed as <name>.<database>. A database whose backup failed is recorded and
        notified under its own name while the others go on; the run fails if any did."""
        request = _backup_request(
            self,
            "PrepareInstanceRequest",
            databases=sfn.JsonPath.string_at("$.config.settings.databases"),
            exclude_databases=sfn.JsonPath.list_at("$.config.settings.exclude_databases"),
        )
        dump = _dump(f, "DumpEvery", "$.backups", failed)
        each = sfn.Map(
            self,
            "EachDatabase",
            items_path="$.backups.databases",
            item_selector={
                "database": sfn.JsonPath.string_at("$$.Map.Item.Value.database"),
                "tier": sfn.JsonPath.string_at("$.tier"),
                "result": sfn.JsonPath.object_at("$$.Map.Item.Value"),
                "config": sfn.JsonPath.object_at("$.config"),
            },
            max_concurrency=1,  # verifications queue for slots anyway; one at a time is clearer
            result_path="$.outcomes",
        )
        each.item_processor(self._one_of_every(f, verify))
        summary = sfn.Pass(
            self,
            "SummarizeDatabases",
            parameters={
                "failed": sfn.JsonPath.array_contains(sfn.JsonPath.list_at("$.outcomes"), "failed"),
                "unverified": sfn.JsonPath.array_contains(
                    sfn.JsonPath.list_at("$.outcomes"), "unverified"
                ),
            },
            result_path="$.summary",
        )
        outcome = (
            sfn.Choice(self, "DatabasesOutcome")
            .when(
                sfn.Condition.boolean_equals("$.summary.failed", True),
                sfn.Fail(self, "SomeBackupsFailed", error="BackupFailed"),
            )
            .when(
                sfn.Condition.boolean_equals("$.summary.unverified", True),
                sfn.Fail(self, "SomeBackupsNotVerified", error=ERROR_VERIFICATION_FAILED),
            )
            .otherwise(sfn.Succeed(self, "EveryDatabaseBackedUpAndVerified"))
        )
        return request.next(dump).next(each).next(summary).next(outcome)

    def _one_of_every(self, f: Fragments, verify: sfn.IStateMachine) -> sfn.IChainable:
        """One database of an instance, after the task backed it up (or failed to)."""
        done = sfn.Pass(self, "DatabaseDone", result=sfn.Result.from_string("verified"))
        unverified = sfn.Pass(
            self, "DatabaseNotVerified", result=sfn.Result.from_string("unverified")
        )
        failed = sfn.Pass(self, "DatabaseFailed", result=sfn.Result.from_string("failed"))
        error = sfn.Pass(
            self,
            "DatabaseError",
            parameters={
                "Error": sfn.JsonPath.string_at("$.result.error"),
                "Cause": sfn.JsonPath.string_at("$.result.message"),
            },
            result_path=ERROR_PATH,
        )
        record_failure = f.invoke(
            "RecordDatabaseFailure",
            "record",
            {
                "kind": "backup",
                "database": sfn.JsonPath.string_at("$.database"),
                "tier": sfn.JsonPath.string_at("$.tier"),
                "error": sfn.JsonPath.object_at(ERROR_PATH),
            },
            result_path=None,
        )
        notify_failure = f.notify("NotifyDatabaseFailed", "backup-failed")
        record_failure.add_catch(notify_failure, result_path="$.record_error")
        notify_failure.add_catch(failed, result_path="$.notify_error")
        record = _record_backup(f, "RecordDatabaseBackup", "$.result")
        # <instance>.<database>-<uuid> could pass the 80 characters a name may have.
        start_verify = _start_verify(
            self, "VerifyDatabase", verify, "$.result.backup_id", sfn.JsonPath.uuid()
        )
        retention = _retention(f, "ApplyDatabaseRetention")
        record.add_catch(start_verify, result_path="$.record_error")
        # Not verified (the verify workflow notified why): retention still runs, as for one
        # database, and it never deletes the newest verified backup.
        prune_anyway = _retention(f, "ApplyRetentionUnverified")
        prune_anyway.add_catch(unverified, result_path="$.retention_error")
        start_verify.add_catch(prune_anyway.next(unverified), result_path="$.verify_error")
        retention.add_catch(failed, result_path=ERROR_PATH)
        return (
            sfn.Choice(self, "DatabaseBackedUp")
            .when(
                sfn.Condition.is_present("$.result.error"),
                error.next(record_failure).next(notify_failure).next(failed),
            )
            .otherwise(record.next(start_verify).next(retention).next(done))
        )


def _backup_request(scope: Construct, sid: str, **extra: Any) -> sfn.Pass:
    """The dump task's request, from the schedule's payload and the database's settings."""
    return sfn.Pass(
        scope,
        sid,
        parameters={
            "database": sfn.JsonPath.string_at("$.database"),
            "tier": sfn.JsonPath.string_at("$.tier"),
            "secret_arn": sfn.JsonPath.string_at("$.config.settings.secret_arn"),
            "sslmode": sfn.JsonPath.string_at("$.config.settings.sslmode"),
            "lock_wait_timeout_minutes": sfn.JsonPath.number_at(
                "$.config.settings.lock_wait_timeout_minutes"
            ),
            "snapshot_idle_timeout_minutes": sfn.JsonPath.number_at(
                "$.config.settings.snapshot_idle_timeout_minutes"
            ),
            **extra,
        },
        result_path="$.request",
    )


def _dump(f: Fragments, sid: str, result_path: str, failed: sfn.IChainable) -> sfn.CustomState:
    """The backup task, retried on transient errors, `failed` on any other."""
    dump = f.fargate(sid, "backup", "$.request", "$.config.settings", result_path)
    dump.add_retry(
        errors=TRANSIENT_TASK_ERRORS,
        interval=TASK_RETRY_INTERVAL,
        max_attempts=TASK_RETRY_ATTEMPTS,
        backoff_rate=2.0,
    )
    dump.add_catch(failed, result_path=ERROR_PATH)
    return dump


def _record_backup(f: Fragments, sid: str, result_path: str) -> tasks.LambdaInvoke:
    return f.invoke(
        sid,
        "record",
        {
            "kind": "backup",
            "database": sfn.JsonPath.string_at("$.database"),
            "tier": sfn.JsonPath.string_at("$.tier"),
            "result": sfn.JsonPath.object_at(result_path),
        },
        result_path=None,
    )


def _start_verify(
    scope: Construct, sid: str, verify: sfn.IStateMachine, backup_id_path: str, name: str
) -> tasks.StepFunctionsStartExecution:
    """The verify workflow on the backup just taken, waited for."""
    return tasks.StepFunctionsStartExecution(
        scope,
        sid,
        state_machine=verify,
        integration_pattern=sfn.IntegrationPattern.RUN_JOB,
        name=name,
        input=sfn.TaskInput.from_object(
            {
                "database": sfn.JsonPath.string_at("$.database"),
                "backup_id": sfn.JsonPath.string_at(backup_id_path),
                "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": sfn.JsonPath.execution_id,
            }
        ),
        result_path=sfn.JsonPath.DISCARD,
    )


def _retention(f: Fragments, sid: str) -> tasks.LambdaInvoke:
    """Retention of the database's backups, by its settings (never the newest verified)."""
    return f.invoke(
        sid,
        "retention",
        {
            "database": sfn.JsonPath.string_at("$.database"),
            "retention": sfn.JsonPath.object_at("$.config.settings.retention"),
            "retention_days": sfn.JsonPath.object_at("$.config.settings.retention_days"),
        },
        result_path="$.retention",
    )
