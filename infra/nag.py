"""cdk-nag AwsSolutions acknowledgements, each with the reason a reviewer needs.

Every acknowledgement names the exact finding (rule and the one wildcard it is about) on
the one policy it belongs to, so a new wildcard anywhere still fails synth.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Acknowledgment, CfnElement, Stack, Token, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct

from backproof.contract import INSTANCE_PREFIX

PACK = "AwsSolutions::"


def _ref(construct: IConstruct, attribute: str = "Arn") -> str:
    """How cdk-nag spells a reference in a finding: <LogicalId.Arn>."""
    stack = Stack.of(construct)
    element = construct if isinstance(construct, CfnElement) else construct.node.default_child
    logical_id = stack.resolve(stack.get_logical_id(element))  # type: ignore[arg-type]
    return f"<{logical_id}.{attribute}>"


def _ack(scope: IConstruct, finding: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{PACK}{finding}", reason=reason))


def _policy(role: iam.IRole | None) -> IConstruct:
    assert role is not None, "every function has its own role"
    policy = role.node.find_child("DefaultPolicy").node.default_child
    assert policy is not None, "the role's default policy has its CloudFormation resource"
    return policy


def _wild(scope: IConstruct, resource: str, reason: str) -> None:
    _ack(scope, f"AwsSolutions-IAM5[Resource::{resource}]", reason)


_ARN = "arn:<AWS::Partition>:{service}:{region}:{account}:{rest}"


class _Arns:
    """ARNs spelled as cdk-nag prints them: pseudo parameters stay <AWS::...> unless the
    stack was given a concrete account or region (as `cdk synth` does from the CLI's env)."""

    def __init__(self) -> None:
        self.region = "<AWS::Region>"
        self.account = "<AWS::AccountId>"

    def bind(self, stack: Stack) -> None:
        self.region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
        self.account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account

    def format(self, *, service: str, rest: str) -> str:
        return _ARN.format(service=service, region=self.region, account=self.account, rest=rest)


ARN = _Arns()


def acknowledge(
    stack: Stack,
    *,
    functions: dict[str, lambda_.Function],
    task_roles: Mapping[str, iam.IRole],
    execution_role: iam.IRole,
    bucket: IConstruct,
    machines: Mapping[str, IConstruct],
    task_definitions: Mapping[str, IConstruct],
    verify_machine: IConstruct,
    cluster: CfnElement,
    settings_prefix: str,
    freshness_schedule_role: iam.IRole,
    member_alarm_prefix: str | None = None,
) -> None:
    """Acknowledge each known finding; `stack` resolves the logical ids findings name."""
    ARN.bind(stack)
    verify_id = stack.resolve(stack.get_logical_id(verify_machine.node.default_child))  # type: ignore[arg-type]
    verify_name = json.dumps(
        {"Fn::Select": [6, {"Fn::Split": [":", {"Ref": verify_id}]}]}, separators=(",", ":")
    )
    janitor_execution_resource = ARN.format(service="states", rest=f"execution:{verify_name}:*")
    cluster_id = stack.resolve(stack.get_logical_id(cluster))
    parts = {"Fn::Split": [":cluster/", {"Fn::GetAtt": [cluster_id, "Arn"]}]}
    task_arn_resource = (
        json.dumps({"Fn::Select": [0, parts]}, separators=(",", ":"))
        + ":task/"
        + json.dumps({"Fn::Select": [1, parts]}, separators=(",", ":"))
        + "/*"
    )
    backups = f"{_ref(bucket)}/backups/*"
    objects = (
        "Backups are objects under the backups/ prefix of the one backup bucket; their keys "
        "(database/date/backup id) are only known at run time."
    )

    safety = f"{_ref(bucket)}/safety/*"
    safety_objects = (
        "Safety backups of restore targets are objects under the safety/ prefix; their keys "
        "(target/date/backup id) are only known at run time."
    )

    # -- the dump/restore tasks: one role per action, one execution role for all --
    _acknowledge_tasks(task_roles, task_definitions, bucket)
    _wild(
        _policy(execution_role),
        "*",
        "ecr:GetAuthorizationToken supports no resource-level permission; image pulls are limited "
        "to the asset repository by the statements beside it.",
    )

    # -- functions --
    for name, fn in functions.items():
        policy = _policy(fn.role)
        _wild(
            policy,
            "*",
            "Active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support no "
            "resource-level permissions, so Resource must be *.",
        )
        logs = fn.node.scope.node.find_child(f"{fn.node.id}Logs")  # type: ignore[union-attr]
        _wild(
            policy,
            f"{_ref(logs)}:log-stream:*",
            "Lambda names a log stream per execution environment; the log group is this "
            "function's own.",
        )
        if name in ("integrity", "validate_restore", "retention", "freshness"):
            _wild(policy, backups, objects)
        if name == "retention":
            _wild(policy, safety, safety_objects)
        if name == "validate_restore":
            _wild(
                policy,
                ARN.format(service="ssm", rest=f"parameter{settings_prefix}/*"),
                "Reads one settings parameter per configured database (its declared restore "
                "targets) under this deployment's prefix.",
            )
    create = _policy(functions["create_instance"].role)
    _wild(
        create,
        ARN.format(service="rds", rest=f"db:{INSTANCE_PREFIX}*"),
        "Temporary instance names are chosen per execution (bp-<uuid>); creation also requires the "
        "backproof:ephemeral request tag.",
    )
    _wild(
        create,
        ARN.format(service="rds", rest="og:default:*"),
        "CreateDBInstance authorizes against the engine's default option group, named per engine "
        "version.",
    )
    _wild(
        create,
        ARN.format(service="rds", rest="pg:default.*"),
        "CreateDBInstance authorizes against the engine's default parameter group, named per "
        "engine version.",
    )
    _wild(
        create,
        ARN.format(service="secretsmanager", rest="secret:rds!*"),
        "With ManageMasterUserPassword RDS creates the master secret (rds!db-<uuid>) with the "
        "caller's rights.",
    )
    for name in ("describe_instance", "delete_instance", "janitor", "keep_instance"):
        policy = _policy(functions[name].role)
        _wild(
            policy,
            ARN.format(service="rds", rest="db:*"),
            "DescribeDBInstances lists instances to find backproof's by tag; read-only.",
        )
        if name != "describe_instance":
            _wild(
                policy,
                ARN.format(service="rds", rest=f"db:{INSTANCE_PREFIX}*"),
                "Deletes (or untags) only bp-* instances carrying the backproof:ephemeral tag "
                "(statement condition).",
            )
    stop_tasks = _policy(functions["stop_tasks"].role)
    _wild(
        stop_tasks,
        task_arn_resource,
        "Stops the tasks of an ended execution in the backproof cluster; task ids are generated.",
    )
    _wild(
        stop_tasks,
        "*",
        "ecs:ListTasks supports no resource-level permission; the statement's ecs:cluster "
        "condition limits it to the backproof cluster.",
    )
    _wild(
        _policy(functions["janitor"].role),
        janitor_execution_resource,
        "The janitor reads the status of verify executions holding a slot; execution names are "
        "generated.",
    )

    if member_alarm_prefix is not None:
        _wild(
            _policy(functions["freshness"].role),
            ARN.format(service="cloudwatch", rest=f"alarm:{member_alarm_prefix}*"),
            "The freshness function makes one NoVerifiedBackup alarm per database it finds in an "
            "instance (their names cannot be known at deploy) and removes it when the database "
            "leaves; it may touch only alarms named with this deployment's prefix.",
        )
    _wild(
        _policy(freshness_schedule_role),
        f"{_ref(functions['freshness'])}:*",
        "CDK's grantInvoke for the schedule's Lambda target covers the function's versions and "
        "aliases (ARN:*); the same one function, invoked by EventBridge Scheduler only.",
    )

    # -- state machines --
    invoked = {
        "verify": [
            "integrity",
            "create_instance",
            "describe_instance",
            "delete_instance",
            "record",
            "notify",
        ],
        "backup": ["record", "retention", "notify"],
        "restore": [
            "validate_restore",
            "keep_instance",
            "create_instance",
            "describe_instance",
            "delete_instance",
            "record",
            "notify",
        ],
        "janitor": ["janitor", "notify"],
        "native": [
            "native_plan",
            "restore_instance",
            "describe_instance",
            "delete_instance",
            "notify",
        ],
    }
    for name, machine in machines.items():
        policy = _policy(machine.role)  # type: ignore[attr-defined]
        _wild(
            policy,
            "*",
            "X-Ray tracing and CloudWatch Logs delivery (logs:CreateLogDelivery and friends) "
            "support no resource-level permissions.",
        )
        for fn_name in invoked[name]:
            _wild(
                policy,
                f"{_ref(functions[fn_name])}:*",
                "CDK's LambdaInvoke grant covers the function's versions and aliases (ARN:*); "
                "same function.",
            )
        if name != "janitor":
            _wild(
                policy,
                ARN.format(service="ssm", rest=f"parameter{settings_prefix}/*"),
                "One settings parameter per configured database under this deployment's prefix.",
            )
        if name in ("verify", "backup", "restore", "native"):
            _wild(
                policy,
                task_arn_resource,
                "ecs:StopTask/DescribeTasks on tasks of the backproof cluster; task ids are "
                "generated.",
            )
    backup_policy = _policy(machines["backup"].role)  # type: ignore[attr-defined]
    _wild(
        backup_policy,
        ARN.format(service="states", rest=f"execution:{verify_name}*"),
        "CDK's StartExecution .sync grant: Describe/StopExecution on the verify machine's "
        "executions.",
    )


def acknowledge_replication(role: iam.IRole, bucket: IConstruct, replica_bucket_arn: str) -> None:
    """The S3 replication role: it copies every object, whatever its key, so it names them."""
    policy = _policy(role)
    _wild(
        policy,
        f"{_ref(bucket)}/*",
        "S3 replication reads every version of every backup object to copy it to the second "
        "region; object keys are made per backup at run time, so the bucket's objects are named",
    )
    _wild(
        policy,
        f"{replica_bucket_arn}/*",
        "S3 replication writes every backup object (and delete markers, tags) into the replica "
        "bucket under the same keys, which are made per backup at run time",
    )


def _execution_name(stack: Stack, machine: IConstruct) -> str:
    """A state machine's name as cdk-nag prints it inside an execution ARN."""
    logical_id = stack.resolve(stack.get_logical_id(machine.node.default_child))  # type: ignore[arg-type]
    return json.dumps(
        {"Fn::Select": [6, {"Fn::Split": [":", {"Ref": logical_id}]}]}, separators=(",", ":")
    )


def acknowledge_ways_back(
    stack: Stack,
    *,
    functions: dict[str, lambda_.Function],
    bucket: IConstruct,
    native_machine: IConstruct,
    restore_machine: IConstruct,
    settings_prefix: str,
) -> None:
    """RDS's own ways back (infra/native.py) and restore records (a rollback), as the functions
    see them (the tasks' side is in `_acknowledge_tasks`)."""
    ARN.bind(stack)
    validate = _policy(functions["validate_restore"].role)
    _wild(
        validate,
        f"{_ref(bucket)}/restores/*",
        "A rollback request names a restore id: its record is read to find the safety backup.",
    )
    _wild(
        validate,
        f"{_ref(bucket)}/safety/*",
        "A rollback restores the safety backup its restore took; its manifest is read to plan.",
    )
    plan = _policy(functions["native_plan"].role)
    _wild(
        plan,
        f"{_ref(bucket)}/backups/*",
        "The nearest logical backup of the database is found by reading its manifests.",
    )
    _wild(
        plan,
        ARN.format(service="ssm", rest=f"parameter{settings_prefix}/*"),
        "Reads one settings parameter per configured database (its rds_instance_id).",
    )
    for rest, reason in (
        ("db:*", "Reads a configured source instance and its restore window; read-only."),
        ("snapshot:*", "Lists a source instance's snapshots (names chosen by RDS or people)."),
        ("auto-backup:*", "Reads a source instance's automated backups' restore window."),
    ):
        _wild(plan, ARN.format(service="rds", rest=rest), reason)
    restore = _policy(functions["restore_instance"].role)
    for rest, reason in (
        (
            f"db:{INSTANCE_PREFIX}*",
            "Restores only into bp-<uuid> instances, named per execution, with the "
            "backproof:ephemeral request tag (statement condition).",
        ),
        ("og:default:*", "A restore authorizes against the engine's default option group."),
        ("pg:default.*", "A restore authorizes against the engine's default parameter group."),
        (
            "snapshot:*",
            "Snapshots of the configured sources are chosen at run time (automated ones are "
            "named by RDS); the restore creates only tagged bp-* instances.",
        ),
    ):
        _wild(restore, ARN.format(service="rds", rest=rest), reason)
    _wild(
        restore,
        ARN.format(service="secretsmanager", rest="secret:rds!*"),
        "With ManageMasterUserPassword RDS creates the restored instance's master secret "
        "(rds!db-<uuid>) with the caller's rights.",
    )
    _wild(
        restore,
        ARN.format(service="kms", rest="key/*"),
        "A restore keeps its source's storage key, whichever it is: RDS needs a grant on it "
        "(kms:ViaService rds and GrantIsForAWSResource conditions).",
    )
    native = _execution_name(stack, native_machine)
    _wild(
        _policy(functions["janitor"].role),
        ARN.format(service="states", rest=f"execution:{native}:*"),
        "The janitor reads the status of native verify executions holding a slot; execution "
        "names are generated.",
    )
    _wild(
        _policy(restore_machine.role),  # type: ignore[attr-defined]
        ARN.format(service="states", rest=f"execution:{native}*"),
        "CDK's StartExecution .sync grant: Describe/StopExecution on the native verify "
        "machine's executions (a point-in-time request).",
    )


# Per task action, the objects its role reads or writes that cdk-nag reports as wildcards,
# each with the reason. Keys hold the database, date and backup or run id: only known at run
# time. store/layout.py and store/records.py name them.
TASK_OBJECTS: dict[str, tuple[tuple[str, str], ...]] = {
    "backup": (
        (
            "backups/*",
            "Writes the new backup's archive, roles.json and manifest under backups/<database>/"
            "<date>/<backup id>/ (ids made at run time); reads back the archive's size. The "
            "evidence beneath (verifications/) is explicitly denied.",
        ),
    ),
    "verify": (
        (
            "backups/*",
            "Reads the backup being verified (manifest, archive, roles.json, earlier evidence); "
            "its key holds the database, date and backup id, known at run time. Read only.",
        ),
        (
            "backups/*/verifications/*",
            "Writes only the verification evidence of a backup (verifications/<run id>.json and "
            "its signature); backup ids and run ids are made at run time.",
        ),
    ),
    "restore": (
        (
            "backups/*",
            "Reads the backup an operator restores (manifest, archive, roles.json); its key "
            "holds the database, date and backup id, known at run time. Read only.",
        ),
        (
            "safety/*",
            "Writes the safety backup of a restore target before replacing it, and reads one "
            "back for a rollback; target names and backup ids are known at run time.",
        ),
        (
            "restores/*",
            "Writes each operator restore's record (restores/<date>/<restore id>.json) and reads "
            "it back for a rollback; restore ids are made at run time.",
        ),
    ),
    "native": (
        (
            "backups/*",
            "Reads the manifests of the database's logical backups to compare the restored "
            "instance with the nearest one; keys known at run time. Read only.",
        ),
        (
            "snapshots/*",
            "Writes the evidence of a snapshot verification (snapshots/<database>/<date>/<run "
            "id>.json); run ids are made at run time.",
        ),
        (
            "point-in-time/*",
            "Writes the evidence of a point-in-time verification (point-in-time/<database>/"
            "<date>/<run id>.json); run ids are made at run time.",
        ),
    ),
}
# The tasks that connect to a temporary instance with the master secret RDS made for it.
TEMPORARY_INSTANCE_TASKS = ("verify", "restore", "native")


def _acknowledge_tasks(
    task_roles: Mapping[str, iam.IRole],
    task_definitions: Mapping[str, IConstruct],
    bucket: IConstruct,
) -> None:
    """Each task action's role and task definition, named one by one."""
    assert set(task_roles) == set(TASK_OBJECTS), "every task role is acknowledged by name"
    for action, role in task_roles.items():
        policy = _policy(role)
        for prefix, reason in TASK_OBJECTS[action]:
            _wild(policy, f"{_ref(bucket)}/{prefix}", reason)
        if action in TEMPORARY_INSTANCE_TASKS:
            _wild(
                policy,
                ARN.format(service="secretsmanager", rest="secret:rds!db-*"),
                "RDS names the master secrets of temporary instances itself (rds!db-<uuid>); "
                "the statement's condition limits it to secrets RDS tagged with a backproof "
                "instance (bp-*).",
            )
        _wild(
            policy,
            "*",
            "states:SendTaskSuccess/Failure/Heartbeat do not support resource-level "
            "permissions: the task token itself authorizes the call.",
        )
        _ack(
            task_definitions[action],
            "AwsSolutions-ECS2",
            "The environment holds only the bucket URL and key ARNs, which are not secrets; "
            "connection secrets are read from Secrets Manager at run time.",
        )
