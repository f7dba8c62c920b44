"""The native verification workflow: RDS's own ways back (a database's newest snapshot, or its
instance at a point in time) restored into a temporary instance, checked, compared with the
nearest logical backup, and deleted.

    plan (native_plan) -> settings -> slot -> name -> restore (restore_instance) -> poll
    -> checks task (`native`) -> delete -> release slot -> outcome

Started by a schedule per database (`verify_snapshots`, `verify_point_in_time`) with
`{"database", "mode"}`, or by the restore workflow for a console point-in-time request. Every
state after the restore was attempted has a path to the deletion (tests/infra/test_workflows.py);
the janitor deletes any instance a stopped execution left behind.
"""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .fragments import ERROR_PATH, Fragments, Resources, temporary_instance
from .workflows import REQUEST_ERRORS, _machine


class NativeVerifyWorkflow(Construct):
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
        fail = f.fail_with_error("WayBackFailed")
        notify = f.notify("NotifyWayBackFailed", "native-verification-failed")
        notify.add_catch(fail, result_path="$.notify_error")
        failed = notify.next(fail)
        rejected = f.fail_with_error("RequestRejected")

        # The plan validates the input and reads RDS, the settings and the store: an unknown
        # database, a source without backups or a time outside the window is rejected here.
        plan = f.invoke("PlanWayBack", "native_plan", None, result_path="$.plan")
        plan.add_catch(rejected, errors=list(REQUEST_ERRORS), result_path=ERROR_PATH)
        plan.add_catch(failed, result_path=ERROR_PATH)
        resolve = f.resolve_config("ResolveConfig")
        resolve.add_catch(failed, result_path=ERROR_PATH)
        # RDS's own restores count against the same quota of temporary instances.
        acquire = f.acquire_slot("AcquireSlot")
        acquire.add_catch(failed, result_path=ERROR_PATH)
        instance_class = f.configured_class()

        release = f.release_slot("ReleaseSlot")
        outcome = sfn.Choice(self, "WayBackOutcome")
        release.add_catch(outcome, result_path="$.release_error")  # the janitor frees it
        release.next(outcome)
        delete = f.delete_instance(then=release)

        restore = f.invoke(
            "RestoreInstance",
            "restore_instance",
            {
                "instance_id": sfn.JsonPath.string_at("$.instance.instance_id"),
                "database": sfn.JsonPath.string_at("$.database"),
                "way_back": sfn.JsonPath.object_at("$.plan.way_back"),
                "instance_class": sfn.JsonPath.string_at("$.instance_class"),
                "subnet_group_name": sfn.JsonPath.string_at("$.config.settings.subnet_group_name"),
                "security_group_id": sfn.JsonPath.string_at(
                    "$.config.settings.instance_security_group_id"
                ),
                "execution": sfn.JsonPath.execution_id,
            },
            result_path="$.restored",
        )
        request = sfn.Pass(
            self,
            "PrepareChecksRequest",
            parameters={
                "database": sfn.JsonPath.string_at("$.database"),
                "way_back": sfn.JsonPath.object_at("$.plan.way_back"),
                "checks": sfn.JsonPath.object_at("$.config.settings.checks"),
                # The database's name on the server is read from its secret (never more).
                "source_secret_arn": sfn.JsonPath.string_at("$.config.settings.secret_arn"),
                "restore_started_at": sfn.JsonPath.string_at("$.restored.started_at"),
                "available_at": sfn.JsonPath.string_at("$.instance.checked_at"),
                "target": temporary_instance(),
            },
            result_path="$.request",
        )
        check = f.fargate(
            "CheckRestoredInstance", "native", "$.request", "$.config.settings", "$.verification"
        )
        check.add_catch(delete, result_path=ERROR_PATH)
        lifecycle = f.create_and_wait(
            "", ready=request.next(check).next(delete), delete=delete, create=restore
        )
        outcome.when(sfn.Condition.is_present(ERROR_PATH), failed).otherwise(
            sfn.Succeed(self, "WayBackVerified", output_path="$.verification")
        )
        definition = plan.next(resolve).next(acquire).next(instance_class).next(lifecycle)
        self.state_machine = _machine(
            self, "StateMachine", definition, key=key, log_retention=log_retention, fragments=f
        )
