"""The backup, verify, restore and janitor state machines, composed from fragments."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from backproof.contract import BAD_INPUT_ERRORS

from .fragments import (
    ERROR_PATH,
    Fragments,
    Resources,
    temporary_instance,
)


def _machine(
    scope: Construct,
    cid: str,
    definition: sfn.IChainable,
    *,
    key: kms.IKey,
    log_retention: logs.RetentionDays,
    fragments: Fragments | None = None,
) -> sfn.StateMachine:
    log_group = logs.LogGroup(
        scope,
        f"{cid}Logs",
        retention=log_retention,
        encryption_key=key,
        removal_policy=RemovalPolicy.DESTROY,
    )
    machine = sfn.StateMachine(
        scope,
        cid,
        definition_body=sfn.DefinitionBody.from_chainable(definition),
        tracing_enabled=True,
        logs=sfn.LogOptions(
            destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
        ),
    )
    if fragments is not None:
        for statement in fragments.task_policies():
            machine.add_to_role_policy(statement)
    return machine


# Errors that mean the operator's input is wrong: the handlers' BadInput family. (StoreUnavailable
# and SourceUnavailable are excluded: an outage is not the operator's mistake.)
REQUEST_ERRORS = tuple(
    e for e in BAD_INPUT_ERRORS if e not in ("SourceUnavailable", "StoreUnavailable")
)


class VerifyWorkflow(Construct):
    """integrity -> slot -> create instance -> poll -> restore+checks task -> delete -> release."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        res: Resources,
        key: kms.IKey,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        f = Fragments(self, res)
        failed = f.failure("Verification", "verification")

        # The integrity check comes first: it also validates the operator's input (a missing
        # field is rejected by name) and reads nothing but the store.
        rejected = f.fail_with_error("RequestRejected")
        integrity = f.invoke("CheckIntegrity", "integrity", None, result_path="$.backup")
        # An unknown backup, a malformed input: the request is rejected, not the backup failed.
        integrity.add_catch(rejected, errors=list(REQUEST_ERRORS), result_path=ERROR_PATH)
        integrity.add_catch(failed, result_path=ERROR_PATH)
        # One verification per backup at a time; the lock also keeps retention off the backup.
        lock_key = sfn.JsonPath.format(
            "lock#verify#{}#{}",
            sfn.JsonPath.string_at("$.database"),
            sfn.JsonPath.string_at("$.backup.backup_id"),
        )
        unlock_failed = f.release_lock("Failed", lock_key)
        unlock_failed.add_catch(failed, result_path="$.release_error")
        unlock_failed.next(failed)
        lock = f.acquire_lock(
            "", lock_key, "$.backup.backup_id", "VerificationInProgress", on_error=failed
        )
        resolve = f.resolve_config("ResolveConfig")
        resolve.add_catch(unlock_failed, result_path=ERROR_PATH)
        acquire = f.acquire_slot("AcquireSlot")
        acquire.add_catch(unlock_failed, result_path=ERROR_PATH)
        instance_class = f.configured_class()

        # Deletion and slot release happen on every path once creation was attempted.
        release = f.release_slot("ReleaseSlot")
        unlock = f.release_lock("", lock_key)
        outcome = sfn.Choice(self, "VerificationOutcome")
        # A slot or lock that cannot be released is freed by the janitor; the outcome counts.
        release.add_catch(unlock, result_path="$.release_error")
        unlock.add_catch(outcome, result_path="$.release_error")
        release.next(unlock).next(outcome)
        delete = f.delete_instance(then=release)

        request = sfn.Pass(
            self,
            "PrepareVerifyRequest",
            parameters={
                "database": sfn.JsonPath.string_at("$.database"),
                "backup_id": sfn.JsonPath.string_at("$.backup.backup_id"),
                "checks": sfn.JsonPath.object_at("$.config.settings.checks"),
                "rto_target_minutes": sfn.JsonPath.number_at(
                    "$.config.settings.rto_target_minutes"
                ),
                "rpo_target_minutes": sfn.JsonPath.number_at(
                    "$.config.settings.rpo_target_minutes"
                ),
                "target": temporary_instance(),
            },
            result_path="$.request",
        )
        restore = f.fargate(
            "RestoreAndCheck", "verify", "$.request", "$.config.settings", "$.verification"
        )
        restore.add_catch(delete, result_path=ERROR_PATH)
        lifecycle = f.create_and_wait("", ready=request.next(restore).next(delete), delete=delete)

        record = f.invoke(
            "RecordVerification",
            "record",
            {
                "kind": "verification",
                "database": sfn.JsonPath.string_at("$.database"),
                "result": sfn.JsonPath.object_at("$.verification"),
            },
            result_path=None,
        )
        # The ping after a verified backup (and, when configured, a success notification);
        # neither a failure to record nor one to notify changes the outcome.
        verified = sfn.Succeed(self, "Verified")
        notify_verified = f.notify("NotifyVerified", "verified", message_path="$.verification")
        notify_verified.add_catch(verified, result_path="$.notify_error")
        record.add_catch(notify_verified, result_path="$.record_error")
        outcome.when(sfn.Condition.is_present(ERROR_PATH), failed).otherwise(
            record.next(notify_verified).next(verified)
        )
        definition = (
            integrity.next(lock).next(resolve).next(acquire).next(instance_class).next(lifecycle)
        )
        self.state_machine = _machine(
            self, "StateMachine", definition, key=key, log_retention=log_retention, fragments=f
        )


class RestoreWorkflow(Construct):
    """Operator restore: validate first, then into a new instance or an existing database (a
    rollback is a restore of the earlier restore's safety backup into the same target), or a
    point-in-time restore of the database's RDS instance, verified by the native workflow."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        res: Resources,
        native: sfn.IStateMachine,
        key: kms.IKey,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        f = Fragments(self, res)
        rejected = f.fail_with_error("RequestRejected")
        failed = f.failure("Restore", "restore")

        # Validation reads nothing but the request and the store: nothing is touched yet.
        validate = f.invoke(
            "ValidateRequest",
            "validate_restore",
            {"request": sfn.JsonPath.entire_payload},
            result_path="$.plan",
        )
        validate.add_catch(rejected, result_path=ERROR_PATH)
        # A rollback names no database: the plan does (its restore's), for every later step.
        adopt_database = sfn.Pass(
            self, "AdoptDatabase", input_path="$.plan.database", result_path="$.database"
        )
        resolve = f.resolve_config("ResolveConfig", database_path="$.plan.database")
        resolve.add_catch(rejected, result_path=ERROR_PATH)
        # The plan carries the resolved backup, so instance creation reads it like verify does.
        adopt = sfn.Pass(
            self,
            "AdoptPlan",
            parameters={
                "backup_id": sfn.JsonPath.string_at("$.plan.backup.backup_id"),
                "server_major": sfn.JsonPath.number_at("$.plan.backup.server_major"),
            },
            result_path="$.backup",
        )
        planned_class = sfn.Pass(
            self,
            "UsePlannedClass",
            input_path="$.plan.instance_class",
            result_path="$.instance_class",
        )
        configured_class = f.configured_class()
        choose_class = (
            sfn.Choice(self, "ChooseInstanceClass")
            .when(sfn.Condition.is_string("$.plan.instance_class"), planned_class)
            .otherwise(configured_class)
        )

        # -- into a new instance (kept on success, deleted on failure) --
        delete = f.delete_instance(then=failed)
        new_request = sfn.Pass(
            self,
            "PrepareNewInstanceRequest",
            parameters={
                "database": sfn.JsonPath.string_at("$.database"),
                "backup_id": sfn.JsonPath.string_at("$.backup.backup_id"),
                "tables": sfn.JsonPath.list_at("$.plan.tables"),
                "target": {
                    **temporary_instance(),
                    "dbname": sfn.JsonPath.string_at("$.plan.target.dbname"),
                },
            },
            result_path="$.request",
        )
        new_restore = f.fargate(
            "RestoreIntoNewInstance", "restore", "$.request", "$.config.settings", "$.restore"
        )
        new_restore.add_catch(delete, result_path=ERROR_PATH)
        # Hand-over: the restored instance is the operator's now, so the janitor must not
        # delete it. If untagging fails, say so loudly: the data is there, the tag must go.
        keep = f.invoke(
            "KeepInstance",
            "keep_instance",
            {"instance_id": sfn.JsonPath.string_at("$.instance.instance_id")},
            result_path="$.kept",
        )
        keep_failed = f.notify(
            "NotifyKeepFailed",
            "instance-not-handed-over",
            message_path="$.keep_error",
        )
        keep_failed_end = sfn.Fail(
            self,
            "RestoredButStillEphemeral",
            error="KeepInstanceFailed",
            cause="restore succeeded; remove tag backproof:ephemeral from the instance or the "
            "janitor deletes it at its expiry",
        )
        keep_failed.add_catch(keep_failed_end, result_path="$.notify_error")
        keep.add_catch(keep_failed.next(keep_failed_end), result_path="$.keep_error")
        restored_new = sfn.Succeed(self, "RestoredIntoNewInstance")
        lifecycle = f.create_and_wait(
            "",
            ready=new_request.next(new_restore).next(keep).next(restored_new),
            delete=delete,
        )
        planned_class.next(lifecycle)
        configured_class.next(lifecycle)
        new_instance = choose_class

        # -- into a declared restore target (safety backup and confirmation first) --
        # The plan names the target's own secret: the backup secret never restores.
        existing_request = sfn.Pass(
            self,
            "PrepareExistingRequest",
            parameters={
                "database": sfn.JsonPath.string_at("$.database"),
                "backup_id": sfn.JsonPath.string_at("$.backup.backup_id"),
                "tables": sfn.JsonPath.list_at("$.plan.tables"),
                "target": {
                    "database": sfn.JsonPath.string_at("$.plan.target.database"),
                    "secret_arn": sfn.JsonPath.string_at("$.plan.target.secret_arn"),
                    "sslmode": sfn.JsonPath.string_at("$.plan.target.sslmode"),
                    "confirm": sfn.JsonPath.string_at("$.plan.target.confirm"),
                },
                # A rollback's restore id (null for a restore): the task restores the safety
                # backup that restore took, after emptying the target.
                "rollback": sfn.JsonPath.string_at("$.plan.rollback"),
            },
            result_path="$.request",
        )
        existing_restore = f.fargate(
            "RestoreIntoExisting", "restore", "$.request", "$.config.settings", "$.restore"
        )
        # One restore per target at a time.
        lock_key = sfn.JsonPath.format(
            "lock#restore#{}#{}",
            sfn.JsonPath.string_at("$.database"),
            sfn.JsonPath.string_at("$.plan.target.database"),
        )
        lock = f.acquire_lock(
            "", lock_key, "$.backup.backup_id", "RestoreInProgress", on_error=failed
        )
        unlock_failed = f.release_lock("Failed", lock_key)
        unlock_failed.add_catch(failed, result_path="$.release_error")
        unlock_failed.next(failed)
        existing_restore.add_catch(unlock_failed, result_path=ERROR_PATH)
        unlock = f.release_lock("", lock_key)
        restored = sfn.Succeed(self, "RestoredIntoExisting")
        # A lock that cannot be released is freed by the janitor; the restore is done.
        unlock.add_catch(restored, result_path="$.release_error")
        existing = lock.next(existing_request).next(existing_restore).next(unlock).next(restored)

        dry_run = sfn.Succeed(self, "DryRunPlanned", output_path="$.plan")
        # -- a point in time of the database's RDS instance, restored, checked and deleted --
        point_in_time = tasks.StepFunctionsStartExecution(
            self,
            "RestorePointInTime",
            state_machine=native,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            name=sfn.JsonPath.format(
                "{}-pitr-{}", sfn.JsonPath.string_at("$.database"), sfn.JsonPath.uuid()
            ),
            input=sfn.TaskInput.from_object(
                {
                    "database": sfn.JsonPath.string_at("$.database"),
                    "mode": "point_in_time",
                    "time": sfn.JsonPath.string_at("$.plan.target.time"),
                    "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": sfn.JsonPath.execution_id,
                }
            ),
            # .sync:2: the child's output arrives as JSON, not as a string
            result_selector={"verification": sfn.JsonPath.object_at("$.Output")},
            result_path="$.point_in_time",
        )
        point_in_time.add_catch(failed, result_path=ERROR_PATH)
        point_in_time.next(sfn.Succeed(self, "PointInTimeVerified", output_path="$.point_in_time"))
        way = (
            sfn.Choice(self, "RouteWayBack")
            .when(
                sfn.Condition.string_equals("$.plan.target.kind", "point_in_time"),
                sfn.Choice(self, "PointInTimeDryRun")
                .when(sfn.Condition.boolean_equals("$.plan.dry_run", True), dry_run)
                .otherwise(point_in_time),
            )
            .otherwise(adopt)
        )
        route = (
            sfn.Choice(self, "RouteRequest")
            .when(sfn.Condition.boolean_equals("$.plan.dry_run", True), dry_run)
            .when(sfn.Condition.string_equals("$.plan.target.kind", "new_instance"), new_instance)
            .otherwise(existing)
        )
        adopt.next(route)
        definition = validate.next(adopt_database).next(resolve).next(way)
        self.state_machine = _machine(
            self, "StateMachine", definition, key=key, log_retention=log_retention, fragments=f
        )


class JanitorWorkflow(Construct):
    """Delete temporary instances past their expiry; free slots of finished executions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        res: Resources,
        key: kms.IKey,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        f = Fragments(self, res)
        sweep = f.invoke("Sweep", "janitor", {"dry_run": False}, result_path="$.janitor")
        failed = f.fail_with_error("SweepFailed")
        notify_failed = f.notify("NotifySweepFailed", "janitor-failed")
        notify_failed.add_catch(failed, result_path="$.notify_error")
        sweep.add_catch(notify_failed.next(failed), result_path=ERROR_PATH)
        leaked = f.notify(
            "NotifyLeaked",
            "instances-leaked",
            message_path="$.janitor",
        )
        done = sfn.Succeed(self, "Swept")
        leaked.add_catch(done, result_path="$.notify_error")
        definition = sweep.next(
            sfn.Choice(self, "AnyLeaked")
            .when(
                sfn.Condition.number_greater_than("$.janitor.deleted_count", 0), leaked.next(done)
            )
            .otherwise(done)
        )
        self.state_machine = _machine(
            self, "StateMachine", definition, key=key, log_retention=log_retention
        )
