"""One task definition and one task role per task action, each role allowed what its action
does and nothing more, proved by evaluating the synthesized policies against concrete keys."""

from __future__ import annotations

import json
import re
from typing import Any

import entry
import pytest

from .asl import definition, machines
from .conftest import Synth
from .policies import (
    RDS_SECRET,
    TEMPORARY_INSTANCE,
    RolePolicy,
    backup_bucket,
    resources,
    role_id,
    task_definitions,
    task_role,
)

SOURCE_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:backproof/orders-AbCdEf"
RESTORE_SECRET = (
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:backproof/orders-staging-restore-GhIjKl"
)
# An instance that is not one of backproof's temporary instances (the source itself).
OTHER_INSTANCE = "arn:aws:rds:us-east-1:123456789012:db:orders-prod"
BACKUP_ID = "20261121T050312.123Z-1a2b3c"
RUN_ID = "20261122T060000.000Z-9f8e7d"
BACKUP_DIR = f"backups/orders/2026/11/21/{BACKUP_ID}"
SAFETY_DIR = f"safety/db.example.com-5432-orders_staging/2026/11/21/{BACKUP_ID}"
# What a backup directory holds (store/layout.py).
BACKUP_OBJECTS = ("archive.dump.zst", "roles.json", "manifest.json", "manifest.json.sig")
EVIDENCE = (f"verifications/{RUN_ID}.json", f"verifications/{RUN_ID}.json.sig")
RECORDS = {
    "restores": f"restores/2026/11/21/{RUN_ID}.json",
    "snapshots": f"snapshots/orders/2026/11/21/{RUN_ID}.json",
    "point-in-time": f"point-in-time/orders/2026/11/21/{RUN_ID}.json",
}


class Bucket:
    """ARNs in the backup bucket, spelled as the resolved policies spell them."""

    def __init__(self, template: dict[str, Any]) -> None:
        self.arn = backup_bucket(template)

    def object(self, key: str) -> str:
        return f"{self.arn}/{key}"


@pytest.fixture(scope="module")
def bucket(synth: Synth) -> Bucket:
    return Bucket(synth.template)


def writes(role: RolePolicy, arn: str) -> bool:
    return role.allows("s3:PutObject", arn)


def secrets_read(role: RolePolicy) -> set[str]:
    return role.granted("secretsmanager:GetSecretValue")


# -- the task definitions --------------------------------------------------------------------
def test_one_task_definition_per_action_sharing_image_logs_and_execution_role(
    synth: Synth,
) -> None:
    # Given the synthesized task definitions
    definitions = {
        action: synth.template["Resources"][logical_id]["Properties"]
        for action, logical_id in task_definitions(synth.template).items()
    }
    # Then there is one for each action the container entry point knows
    assert set(definitions) == set(entry.ACTIONS)
    # each with a task role of its own
    roles = {d["TaskRoleArn"]["Fn::GetAtt"][0] for d in definitions.values()}
    assert len(roles) == len(definitions)
    # and one image, one log group and one execution role shared by all
    containers = [d["ContainerDefinitions"] for d in definitions.values()]
    assert all(len(c) == 1 for c in containers)
    assert len({json.dumps(c[0]["Image"]) for c in containers}) == 1
    logs = [c[0]["LogConfiguration"]["Options"] for c in containers]
    assert len({json.dumps(o["awslogs-group"]) for o in logs}) == 1
    # each action's streams under its own prefix
    assert {o["awslogs-stream-prefix"] for o in logs} == set(entry.ACTIONS)
    assert len({d["ExecutionRoleArn"]["Fn::GetAtt"][0] for d in definitions.values()}) == 1


def test_each_workflow_runs_its_action_under_that_actions_task_definition(synth: Synth) -> None:
    template = synth.template
    definitions = task_definitions(template)
    (execution_role,) = {
        d["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
        for d in resources(template, "AWS::ECS::TaskDefinition").values()
    }
    for name, logical_id in machines(template).items():
        # Given each state machine's Fargate steps, rendered with their references
        states = definition(template, logical_id)["States"].values()
        run = {}
        for state in states:
            if state.get("Resource", "").startswith("arn:aws:states:::ecs:runTask"):
                params = state["Parameters"]
                command = params["Overrides"]["ContainerOverrides"][0]["Command.$"]
                action = re.match(r"States\.Array\('(\w+)'", command).group(1)  # type: ignore[union-attr]
                run[action] = params["TaskDefinition"]
        # Then every step names the task definition of the action it runs
        assert run == {a: f"<{definitions[a]}>" for a in run}, name
        # and the machine may start those task definitions only, and pass only their roles
        machine = template["Resources"][logical_id]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
        policy = RolePolicy.of(template, machine)
        assert policy.granted("ecs:RunTask") == {f"<{definitions[a]}>" for a in run}, name
        roles = {f"<{role_id(template, a)}.Arn>" for a in run}
        passed = {*roles, f"<{execution_role}.Arn>"} if run else set()
        assert policy.granted("iam:PassRole") == passed, name


def test_tasks_are_told_their_cpu_so_the_engine_sizes_its_parallel_jobs(synth: Synth) -> None:
    for name, logical_id in machines(synth.template).items():
        for state in definition(synth.template, logical_id)["States"].values():
            if not state.get("Resource", "").startswith("arn:aws:states:::ecs:runTask"):
                continue
            overrides = state["Parameters"]["Overrides"]
            env = {
                e["Name"]: e["Value.$"] for e in overrides["ContainerOverrides"][0]["Environment"]
            }
            # the same number the task is sized with
            assert env["BACKPROOF_TASK_CPU"] == overrides["Cpu.$"], name
            assert overrides["Cpu.$"] == "States.Format('{}', $.config.settings.task_cpu)", name


# -- what each role may do ---------------------------------------------------------------------
def test_the_backup_role_writes_its_backup_and_never_evidence(synth: Synth, bucket: Bucket) -> None:
    # Given the backup task's role
    role = task_role(synth.template, "backup")
    # Then it may write every object of a backup directory, and read the archive back
    for name in BACKUP_OBJECTS:
        assert writes(role, bucket.object(f"{BACKUP_DIR}/{name}")), name
        assert role.allows("s3:PutObjectTagging", bucket.object(f"{BACKUP_DIR}/{name}")), name
    assert role.allows("s3:AbortMultipartUpload", bucket.object(f"{BACKUP_DIR}/archive.dump.zst"))
    assert role.allows("s3:GetObject", bucket.object(f"{BACKUP_DIR}/archive.dump.zst"))
    # but never evidence, whatever allows backups/*: an explicit Deny says so
    for name in EVIDENCE:
        arn = bucket.object(f"{BACKUP_DIR}/{name}")
        assert role.explicitly_denies("s3:PutObject", arn), name
        assert not writes(role, arn) and not role.allows("s3:PutObjectTagging", arn), name
    # nor anything outside backups/
    for key in (f"{SAFETY_DIR}/archive.dump.zst", *RECORDS.values()):
        assert not writes(role, bucket.object(key)), key
    # nor may it delete
    assert not role.allows("s3:DeleteObject", bucket.object(f"{BACKUP_DIR}/manifest.json"))


def test_the_backup_role_reads_the_source_secrets_only(synth: Synth) -> None:
    role = task_role(synth.template, "backup")
    assert secrets_read(role) == {SOURCE_SECRET}
    assert role.reads_secret(SOURCE_SECRET)
    assert not role.reads_secret(RESTORE_SECRET)
    assert not role.reads_secret(RDS_SECRET, tagged_with=TEMPORARY_INSTANCE)


def test_the_verify_role_writes_evidence_only(synth: Synth, bucket: Bucket) -> None:
    # Given the verify task's role
    role = task_role(synth.template, "verify")
    # Then it reads the backup it verifies
    for name in (*BACKUP_OBJECTS, *EVIDENCE):
        assert role.allows("s3:GetObject", bucket.object(f"{BACKUP_DIR}/{name}")), name
    # and writes the run's evidence and its signature, tagged with the backup's tier
    for name in EVIDENCE:
        assert writes(role, bucket.object(f"{BACKUP_DIR}/{name}")), name
        assert role.allows("s3:PutObjectTagging", bucket.object(f"{BACKUP_DIR}/{name}")), name
    # but cannot write an archive, a manifest, a signature of one, or roles.json
    for name in BACKUP_OBJECTS:
        assert not writes(role, bucket.object(f"{BACKUP_DIR}/{name}")), name
    # nor anything outside a backup's evidence
    for key in (f"{SAFETY_DIR}/archive.dump.zst", *RECORDS.values()):
        assert not writes(role, bucket.object(key)), key
    assert role.granted("s3:PutObject") == {bucket.object("backups/*/verifications/*")}


def test_the_verify_role_reads_only_temporary_instance_secrets(synth: Synth) -> None:
    role = task_role(synth.template, "verify")
    # the secret RDS made for a backproof instance, and no other
    assert role.reads_secret(RDS_SECRET, tagged_with=TEMPORARY_INSTANCE)
    assert not role.reads_secret(RDS_SECRET, tagged_with=OTHER_INSTANCE)
    assert not role.reads_secret(RDS_SECRET)
    assert not role.reads_secret(SOURCE_SECRET)
    assert not role.reads_secret(RESTORE_SECRET)


def test_the_restore_role_writes_safety_backups_and_records_only(
    synth: Synth, bucket: Bucket
) -> None:
    # Given the restore task's role
    role = task_role(synth.template, "restore")
    # Then it reads the backup to restore, a safety backup and a record (a rollback)
    for key in (f"{BACKUP_DIR}/archive.dump.zst", f"{SAFETY_DIR}/manifest.json"):
        assert role.allows("s3:GetObject", bucket.object(key)), key
    assert role.allows("s3:GetObject", bucket.object(RECORDS["restores"]))
    # writes the safety backup of the target and the restore's record
    for name in BACKUP_OBJECTS:
        assert writes(role, bucket.object(f"{SAFETY_DIR}/{name}")), name
    assert writes(role, bucket.object(RECORDS["restores"]))
    # and never a database's backups, their evidence, or the ways back's evidence
    for name in (*BACKUP_OBJECTS, *EVIDENCE):
        assert not writes(role, bucket.object(f"{BACKUP_DIR}/{name}")), name
    for kind in ("snapshots", "point-in-time"):
        assert not writes(role, bucket.object(RECORDS[kind])), kind


def test_the_restore_role_never_reads_the_source_backup_secret(synth: Synth) -> None:
    role = task_role(synth.template, "restore")
    # the declared restore target's own secret, and a new instance's master secret
    assert role.reads_secret(RESTORE_SECRET)
    assert role.reads_secret(RDS_SECRET, tagged_with=TEMPORARY_INSTANCE)
    # never the backup secret of the source
    assert not role.reads_secret(SOURCE_SECRET)
    assert secrets_read(role) - {RESTORE_SECRET} == {
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-*"
    }


def test_the_native_role_writes_the_ways_back_evidence_only(synth: Synth, bucket: Bucket) -> None:
    # Given the native verification task's role
    role = task_role(synth.template, "native")
    # Then it reads the logical backups it compares with
    assert role.allows("s3:GetObject", bucket.object(f"{BACKUP_DIR}/manifest.json"))
    # writes the evidence of snapshot and point-in-time verifications
    for kind in ("snapshots", "point-in-time"):
        assert writes(role, bucket.object(RECORDS[kind])), kind
    # and nothing else
    for name in (*BACKUP_OBJECTS, *EVIDENCE):
        assert not writes(role, bucket.object(f"{BACKUP_DIR}/{name}")), name
    for key in (f"{SAFETY_DIR}/manifest.json", RECORDS["restores"]):
        assert not writes(role, bucket.object(key)), key
        assert not role.allows("s3:GetObject", bucket.object(key)), key


def test_the_native_role_reads_the_instance_secret_and_the_source_secret(synth: Synth) -> None:
    role = task_role(synth.template, "native")
    assert role.reads_secret(RDS_SECRET, tagged_with=TEMPORARY_INSTANCE)
    assert not role.reads_secret(RDS_SECRET, tagged_with=OTHER_INSTANCE)
    # the entry point reads the database's name on the server from the source secret
    assert role.reads_secret(SOURCE_SECRET)
    assert not role.reads_secret(RESTORE_SECRET)


@pytest.mark.parametrize("action", sorted(entry.ACTIONS))
def test_every_task_role_reports_to_its_workflow_and_uses_the_bucket_key(
    synth: Synth, action: str
) -> None:
    role = task_role(synth.template, action)
    for call in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"):
        assert role.allows(f"states:{call}", "*"), call
    (key,) = [k for k in resources(synth.template, "AWS::KMS::Key") if k.startswith("StorageKey")]
    for call in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert role.allows(call, f"<{key}.Arn>"), call
    # and no task may delete anything
    assert not any(a.startswith("s3:Delete") for s in role.statements for a in s.actions)


def test_two_databases_each_role_gets_the_secrets_of_its_action(synth_two: Synth) -> None:
    billing = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:backproof/billing-XyZ123"
    backup = task_role(synth_two.template, "backup")
    assert secrets_read(backup) == {SOURCE_SECRET, billing}
    restore = task_role(synth_two.template, "restore")
    assert not restore.reads_secret(SOURCE_SECRET) and not restore.reads_secret(billing)
