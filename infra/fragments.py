"""Small reusable pieces the state machines are built from.

Each fragment is one idea: a Lambda step with the retries that can pass, a Fargate task
that reports through a task token, the poll-until-available loop with a ceiling, the
record-notify-fail chain. Workflows compose them; nothing is copy-pasted between machines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, Fn
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from backproof.contract import (
    ERROR_INSTANCE_BUSY,
    EXECUTION_TAG,
    INSTANCE_PREFIX,
    RETRYABLE_TASK_ERRORS,
    TASK_CPU_ENV,
)

# Polling a new RDS instance: creation takes 5-20 minutes; give up after an hour.
POLL_INTERVAL = Duration.seconds(60)
POLL_CEILING = 60
# Statuses from which an instance never becomes available.
# https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/accessing-monitoring.html#Overview.DBInstance.Status
INSTANCE_DEAD_STATUSES = (
    "failed",
    "incompatible-parameters",
    "incompatible-network",
    "incompatible-option-group",
    "incompatible-restore",  # a snapshot or point-in-time restore that RDS could not finish
    "storage-full",
    "deleting",
    "not-found",
)
# The task sends a heartbeat every minute; silence this long means it died.
TASK_HEARTBEAT = Duration.minutes(10)
TASK_TIMEOUT = Duration.hours(24)
# Errors that can pass on their own. Anything else fails at once: retrying a wrong
# password or a corrupt archive only delays the alarm.
TRANSIENT_TASK_ERRORS = [*RETRYABLE_TASK_ERRORS, "ECS.AmazonECSException"]
INSTANCE_BUSY = ERROR_INSTANCE_BUSY
SLOT_TAKEN = "DynamoDB.ConditionalCheckFailedException"
# Lock items in the slots table: pk "lock#verify#<database>#<backup>" or
# "lock#restore#<database>#<target>", with the holding execution and the backup.
LOCK_KIND = "lock"
# Waiting for a verification slot: every 2 minutes, for at most 12 hours.
SLOT_RETRY_INTERVAL = Duration.minutes(2)
SLOT_RETRY_ATTEMPTS = 360
ERROR_PATH = "$.error"


@dataclass(frozen=True)
class Resources:
    """What the fragments need to point at."""

    functions: dict[str, lambda_.IFunction]
    cluster_arn: str
    # Per task action (the container's first argument): its task definition and task role.
    task_definition_arns: Mapping[str, str]
    task_roles: Mapping[str, iam.IRole]
    # Shared by every task definition; ECS passes it too when it starts a task.
    execution_role: iam.IRole
    container_name: str
    topic: sns.ITopic
    settings_prefix: str
    settings_arn_prefix: str
    slots_table: dynamodb.ITable
    slots_key: str
    max_concurrent_verifications: int


def temporary_instance() -> dict[str, Any]:
    """The request's `target` for a task working on the temporary instance just created."""
    return {
        "instance_id": sfn.JsonPath.string_at("$.instance.instance_id"),
        "host": sfn.JsonPath.string_at("$.instance.endpoint"),
        "port": sfn.JsonPath.number_at("$.instance.port"),
        "secret_arn": sfn.JsonPath.string_at("$.instance.secret_arn"),
    }


class Fragments:
    """Builds states in one state machine's scope."""

    def __init__(self, scope: Construct, res: Resources) -> None:
        self.scope = scope
        self.res = res
        # The task actions this machine runs: it may start only their task definitions.
        self.actions: list[str] = []

    # -- single steps ------------------------------------------------------------------
    def resolve_config(
        self, sid: str, database_path: str = "$.database", result_path: str = "$.config"
    ) -> tasks.CallAwsService:
        """The database's settings as stored at deploy time (one SSM parameter each; an
        instance's databases share their instance's)."""
        return tasks.CallAwsService(
            self.scope,
            sid,
            service="ssm",
            action="getParameter",
            parameters={
                # A database found in an instance is filed as <instance>.<database> and uses
                # its instance's settings (configured names hold no dot).
                "Name": sfn.JsonPath.format(
                    f"{self.res.settings_prefix}/{{}}",
                    sfn.JsonPath.array_get_item(
                        sfn.JsonPath.string_split(sfn.JsonPath.string_at(database_path), "."), 0
                    ),
                )
            },
            iam_resources=[f"{self.res.settings_arn_prefix}/*"],
            iam_action="ssm:GetParameter",
            result_selector={
                "settings": sfn.JsonPath.string_to_json(sfn.JsonPath.string_at("$.Parameter.Value"))
            },
            result_path=result_path,
        )

    def invoke(
        self,
        sid: str,
        function: str,
        payload: dict[str, Any] | None,
        result_path: str | None,
        retry_on: list[str] | None = None,
    ) -> tasks.LambdaInvoke:
        """A Lambda step; Lambda's own transient errors are retried by default.

        With `payload` None the function gets the state's whole input and validates it itself,
        so a field missing from an operator's input is named instead of failing the run.
        """
        step = tasks.LambdaInvoke(
            self.scope,
            sid,
            lambda_function=self.res.functions[function],
            # No payload: Lambda receives the state input as it is.
            payload=sfn.TaskInput.from_object(payload) if payload is not None else None,
            payload_response_only=True,
            result_path=result_path if result_path is not None else sfn.JsonPath.DISCARD,
        )
        if retry_on:
            step.add_retry(
                errors=retry_on, interval=Duration.seconds(60), max_attempts=30, backoff_rate=1.0
            )
        return step

    def fargate(
        self, sid: str, action: str, request_path: str, network_path: str, result_path: str
    ) -> sfn.CustomState:
        """Run the dump/restore container as `action`, under that action's task definition
        (and so its task role); it reports its JSON result via the task token."""
        if action not in self.res.task_definition_arns:
            known = ", ".join(sorted(self.res.task_definition_arns))
            raise ValueError(f"no task definition for action {action!r} (known: {known})")
        if action not in self.actions:
            self.actions.append(action)
        settings = network_path  # where subnets, security groups and task size are read
        cpu = f"States.Format('{{}}', {settings}.task_cpu)"
        state: dict[str, Any] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::ecs:runTask.waitForTaskToken",
            "Parameters": {
                "Cluster": self.res.cluster_arn,
                "TaskDefinition": self.res.task_definition_arns[action],
                "LaunchType": "FARGATE",
                "PropagateTags": "TASK_DEFINITION",
                # Lets the task be found and stopped when this execution ends without it.
                "Tags": [{"Key": EXECUTION_TAG, "Value.$": "$$.Execution.Id"}],
                "NetworkConfiguration": {
                    "AwsvpcConfiguration": {
                        "Subnets.$": f"{settings}.subnet_ids",
                        "SecurityGroups.$": f"{settings}.task_security_group_ids",
                        "AssignPublicIp": "DISABLED",
                    }
                },
                "Overrides": {
                    "Cpu.$": cpu,
                    "Memory.$": f"States.Format('{{}}', {settings}.task_memory_mib)",
                    "ContainerOverrides": [
                        {
                            "Name": self.res.container_name,
                            "Command.$": (
                                f"States.Array('{action}', States.JsonToString({request_path}))"
                            ),
                            "Environment": [
                                {"Name": "BACKPROOF_TASK_TOKEN", "Value.$": "$$.Task.Token"},
                                # The engine's default parallelism: the task's vCPUs.
                                {"Name": TASK_CPU_ENV, "Value.$": cpu},
                            ],
                        }
                    ],
                },
            },
            "TimeoutSeconds": int(TASK_TIMEOUT.to_seconds()),
            "HeartbeatSeconds": int(TASK_HEARTBEAT.to_seconds()),
            "ResultPath": result_path,
        }
        return sfn.CustomState(self.scope, sid, state_json=state)

    def task_policies(self) -> list[iam.PolicyStatement]:
        """What a state machine running Fargate tasks needs (CustomState adds none): start the
        task definitions of the actions it runs, in the cluster, and pass their roles."""
        if not self.actions:
            return []
        roles = [self.res.task_roles[action] for action in self.actions]
        return [
            iam.PolicyStatement(
                actions=["ecs:RunTask"],
                resources=[self.res.task_definition_arns[action] for action in self.actions],
                conditions={"ArnEquals": {"ecs:cluster": self.res.cluster_arn}},
            ),
            iam.PolicyStatement(
                actions=["ecs:StopTask", "ecs:DescribeTasks"],
                resources=[task_arn_pattern(self.res.cluster_arn)],
            ),
            iam.PolicyStatement(
                actions=["ecs:TagResource"],
                resources=[task_arn_pattern(self.res.cluster_arn)],
                conditions={"StringEquals": {"ecs:CreateAction": "RunTask"}},
            ),
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[role.role_arn for role in (*roles, self.res.execution_role)],
                conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            ),
        ]

    def configured_class(self) -> sfn.Pass:
        """The configured class of temporary instances, where instance creation reads it."""
        return sfn.Pass(
            self.scope,
            "UseConfiguredClass",
            input_path="$.config.settings.verify_instance_class",
            result_path="$.instance_class",
        )

    def notify(self, sid: str, event: str, message_path: str = ERROR_PATH) -> tasks.LambdaInvoke:
        """Tell people through the notify function: it names the database, what happened
        (`event`, one of handlers.messages.EVENTS), the error or failed checks at
        `message_path`, the backup and a console link to this execution, then publishes to the
        topic (and a chat webhook). It reads what it needs from the state it is given, so it
        works on any path, whatever is (not yet) known there."""
        return self.invoke(
            sid,
            "notify",
            {
                "event": event,
                "execution": sfn.JsonPath.execution_id,
                "detail": sfn.JsonPath.object_at(message_path),
                "state": sfn.JsonPath.entire_payload,
            },
            result_path=None,
        )

    # -- chains ------------------------------------------------------------------------
    def delete_instance(self, then: sfn.IChainable) -> tasks.LambdaInvoke:
        """Delete the temporary instance, then go on to `then`. A deletion that keeps failing
        notifies people (the janitor deletes it at its expiry) and still goes on to `then`."""
        delete = self.invoke(
            "DeleteInstance",
            "delete_instance",
            {"instance_id": sfn.JsonPath.string_at("$.instance.instance_id")},
            result_path="$.deleted",
            retry_on=[INSTANCE_BUSY],
        )
        leaked = self.notify(
            "NotifyInstanceLeaked", "instance-not-deleted", message_path="$.delete_error"
        )
        delete.add_catch(leaked, result_path="$.delete_error")
        leaked.add_catch(then, result_path="$.notify_error")
        delete.next(then)
        leaked.next(then)
        return delete

    def fail_with_error(self, sid: str) -> sfn.Fail:
        """End the execution with the error a catch stored at ERROR_PATH."""
        return sfn.Fail(
            self.scope, sid, error_path=f"{ERROR_PATH}.Error", cause_path=f"{ERROR_PATH}.Cause"
        )

    def failure(self, prefix: str, kind: str) -> sfn.IChainable:
        """Record the failure as a metric, tell people, end with the cause.

        Each step catches its own errors and carries on: a failure to notify must never
        hide the failure it was about.
        """
        fail = self.fail_with_error(f"{prefix}Failed")
        notify = self.notify(f"{prefix}Notify", f"{kind}-failed")
        notify.add_catch(fail, result_path="$.notify_error")
        payload: dict[str, Any] = {
            "kind": kind,
            "database": sfn.JsonPath.string_at("$.database"),
            "error": sfn.JsonPath.object_at(ERROR_PATH),
        }
        if kind == "backup":
            payload["tier"] = sfn.JsonPath.string_at("$.tier")
        record = self.invoke(f"{prefix}RecordFailure", "record", payload, result_path=None)
        record.add_catch(notify, result_path="$.record_error")
        return record.next(notify).next(fail)

    def acquire_slot(self, sid: str) -> tasks.DynamoUpdateItem:
        """Take a verification slot, waiting (with a ceiling) while none is free."""
        step = tasks.DynamoUpdateItem(
            self.scope,
            sid,
            table=self.res.slots_table,
            key={"pk": tasks.DynamoAttributeValue.from_string(self.res.slots_key)},
            update_expression="SET #count = if_not_exists(#count, :zero) + :one, #holder = :holder",
            condition_expression=(
                "(attribute_not_exists(#count) OR #count < :limit)"
                " AND attribute_not_exists(#holder)"
            ),
            expression_attribute_names={"#count": "count", "#holder": sfn.JsonPath.execution_name},
            expression_attribute_values={
                ":zero": tasks.DynamoAttributeValue.from_number(0),
                ":one": tasks.DynamoAttributeValue.from_number(1),
                ":limit": tasks.DynamoAttributeValue.from_number(
                    self.res.max_concurrent_verifications
                ),
                ":holder": tasks.DynamoAttributeValue.from_string(sfn.JsonPath.execution_id),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        step.add_retry(
            errors=[SLOT_TAKEN],
            interval=SLOT_RETRY_INTERVAL,
            max_attempts=SLOT_RETRY_ATTEMPTS,
            backoff_rate=1.0,
            jitter_strategy=sfn.JitterType.FULL,
        )
        return step

    def release_slot(self, sid: str) -> tasks.DynamoUpdateItem:
        return tasks.DynamoUpdateItem(
            self.scope,
            sid,
            table=self.res.slots_table,
            key={"pk": tasks.DynamoAttributeValue.from_string(self.res.slots_key)},
            update_expression="SET #count = #count - :one REMOVE #holder",
            condition_expression="attribute_exists(#holder)",
            expression_attribute_names={"#count": "count", "#holder": sfn.JsonPath.execution_name},
            expression_attribute_values={":one": tasks.DynamoAttributeValue.from_number(1)},
            result_path=sfn.JsonPath.DISCARD,
        )

    # -- locks: one verification per backup, one restore per target -------------------------
    def acquire_lock(
        self, prefix: str, key: str, backup_path: str, busy_error: str, on_error: sfn.IChainable
    ) -> tasks.DynamoPutItem:
        """Hold `key` (a JsonPath.format expression) for this execution, or end the execution
        with `busy_error`, naming the execution that holds it. The lock records the backup, so
        retention leaves that backup alone while the lock is held."""
        acquire = tasks.DynamoPutItem(
            self.scope,
            f"{prefix}AcquireLock",
            table=self.res.slots_table,
            item={
                "pk": tasks.DynamoAttributeValue.from_string(key),
                "kind": tasks.DynamoAttributeValue.from_string(LOCK_KIND),
                "execution": tasks.DynamoAttributeValue.from_string(sfn.JsonPath.execution_id),
                "database": tasks.DynamoAttributeValue.from_string(
                    sfn.JsonPath.string_at("$.database")
                ),
                "backup_id": tasks.DynamoAttributeValue.from_string(
                    sfn.JsonPath.string_at(backup_path)
                ),
            },
            condition_expression="attribute_not_exists(pk)",
            result_path=sfn.JsonPath.DISCARD,
        )
        holder = tasks.DynamoGetItem(
            self.scope,
            f"{prefix}LockHolder",
            table=self.res.slots_table,
            key={"pk": tasks.DynamoAttributeValue.from_string(key)},
            consistent_read=True,
            result_path="$.lock",
        )
        explain = sfn.Pass(
            self.scope,
            f"{prefix}ExplainBusy",
            parameters={
                "Error": busy_error,
                "Cause": sfn.JsonPath.format(
                    "another execution holds this lock: {}; wait for it to end (or stop it)",
                    sfn.JsonPath.string_at("$.lock.Item.execution.S"),
                ),
            },
            result_path=ERROR_PATH,
        )
        busy = self.fail_with_error(f"{prefix}Busy")
        # The holder may have ended between the two calls: then say so without its name.
        holder.add_catch(busy, result_path=ERROR_PATH)
        acquire.add_catch(
            holder.next(explain).next(busy), errors=[SLOT_TAKEN], result_path=ERROR_PATH
        )
        acquire.add_catch(on_error, result_path=ERROR_PATH)
        return acquire

    def release_lock(self, prefix: str, key: str) -> tasks.DynamoDeleteItem:
        """Give the lock back (only if this execution holds it)."""
        return tasks.DynamoDeleteItem(
            self.scope,
            f"{prefix}ReleaseLock",
            table=self.res.slots_table,
            key={"pk": tasks.DynamoAttributeValue.from_string(key)},
            condition_expression="#execution = :me",
            expression_attribute_names={"#execution": "execution"},
            expression_attribute_values={
                ":me": tasks.DynamoAttributeValue.from_string(sfn.JsonPath.execution_id)
            },
            result_path=sfn.JsonPath.DISCARD,
        )

    def create_and_wait(
        self,
        prefix: str,
        ready: sfn.IChainable,
        delete: sfn.IChainable,
        *,
        create: tasks.LambdaInvoke | None = None,
    ) -> sfn.IChainable:
        """Name, create and poll a new instance; `ready` runs once it is available.

        The instance name is chosen before creation, so a creation that half-succeeded
        can still be deleted by name. Every failure from here on goes to `delete`. `create`
        replaces the default creation step (a restore of RDS's own backups: infra/native.py);
        it reads the name at $.instance.instance_id and must leave $.instance alone.
        """
        name = sfn.Pass(
            self.scope,
            f"{prefix}NameInstance",
            parameters={
                "instance_id": sfn.JsonPath.format(INSTANCE_PREFIX + "{}", sfn.JsonPath.uuid())
            },
            result_path="$.instance",
        )
        create = create or self.invoke(
            f"{prefix}CreateInstance",
            "create_instance",
            {
                "instance_id": sfn.JsonPath.string_at("$.instance.instance_id"),
                "database": sfn.JsonPath.string_at("$.database"),
                "backup_id": sfn.JsonPath.string_at("$.backup.backup_id"),
                "engine_major": sfn.JsonPath.number_at("$.backup.server_major"),
                "instance_class": sfn.JsonPath.string_at("$.instance_class"),
                "storage_gb": sfn.JsonPath.number_at("$.config.settings.verify_storage_gb"),
                "subnet_group_name": sfn.JsonPath.string_at("$.config.settings.subnet_group_name"),
                "security_group_id": sfn.JsonPath.string_at(
                    "$.config.settings.instance_security_group_id"
                ),
                "execution": sfn.JsonPath.execution_id,
            },
            result_path="$.instance",
        )
        create.add_catch(delete, result_path=ERROR_PATH)
        init = sfn.Pass(
            self.scope,
            f"{prefix}StartPolling",
            result=sfn.Result.from_object({"count": 0}),
            result_path="$.poll",
        )
        wait = sfn.Wait(
            self.scope, f"{prefix}WaitForInstance", time=sfn.WaitTime.duration(POLL_INTERVAL)
        )
        describe = self.invoke(
            f"{prefix}DescribeInstance",
            "describe_instance",
            {"instance_id": sfn.JsonPath.string_at("$.instance.instance_id")},
            result_path="$.instance",
        )
        describe.add_catch(delete, result_path=ERROR_PATH)
        count = sfn.Pass(
            self.scope,
            f"{prefix}CountPoll",
            parameters={"count": sfn.JsonPath.math_add(sfn.JsonPath.number_at("$.poll.count"), 1)},
            result_path="$.poll",
        )
        dead = sfn.Pass(
            self.scope,
            f"{prefix}InstanceFailed",
            parameters={
                "Error": "InstanceFailed",
                "Cause": sfn.JsonPath.format(
                    "temporary instance {} is {}",
                    sfn.JsonPath.string_at("$.instance.instance_id"),
                    sfn.JsonPath.string_at("$.instance.status"),
                ),
            },
            result_path=ERROR_PATH,
        )
        too_slow = sfn.Pass(
            self.scope,
            f"{prefix}InstanceTooSlow",
            parameters={
                "Error": "InstanceTimeout",
                "Cause": sfn.JsonPath.format(
                    "temporary instance {} not available after {} polls",
                    sfn.JsonPath.string_at("$.instance.instance_id"),
                    sfn.JsonPath.string_at("$.poll.count"),
                ),
            },
            result_path=ERROR_PATH,
        )
        available = sfn.Condition.string_equals("$.instance.status", "available")
        is_dead = sfn.Condition.or_(
            *[sfn.Condition.string_equals("$.instance.status", s) for s in INSTANCE_DEAD_STATUSES]
        )
        choice = (
            sfn.Choice(self.scope, f"{prefix}InstanceReady")
            .when(available, ready)
            .when(is_dead, dead.next(delete))
            .when(
                sfn.Condition.number_greater_than_equals("$.poll.count", POLL_CEILING),
                too_slow.next(delete),
            )
            .otherwise(count.next(wait))
        )
        return name.next(create).next(init).next(wait).next(describe).next(choice)


def task_arn_pattern(cluster_arn: str) -> str:
    """arn:aws:ecs:REGION:ACCOUNT:cluster/NAME -> arn:aws:ecs:REGION:ACCOUNT:task/NAME/*"""
    parts = Fn.split(":cluster/", cluster_arn)
    return Fn.join("", [Fn.select(0, parts), ":task/", Fn.select(1, parts), "/*"])
