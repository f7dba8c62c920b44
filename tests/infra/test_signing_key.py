"""The signing key on the synthesized template: asymmetric, SIGN_VERIFY, and only the roles of
the tasks that sign (backup, verify, restore) may sign; the integrity function may only check."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Synth
from .policies import role_id, task_definitions


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return action if isinstance(action, list) else [action]


def _signing_key(template: dict[str, Any]) -> str:
    (key,) = [
        k
        for k, v in _resources(template, "AWS::KMS::Key").items()
        if v["Properties"].get("KeyUsage") == "SIGN_VERIFY"
    ]
    return key


# Manifests (a backup, a restore's safety backup) and verification evidence are signed.
SIGNING_ACTIONS = ("backup", "verify", "restore")


def _task_roles(template: dict[str, Any]) -> dict[str, str]:
    return {action: role_id(template, action) for action in task_definitions(template)}


def test_the_signing_key_is_asymmetric_and_signs(synth: Synth) -> None:
    key = synth.template["Resources"][_signing_key(synth.template)]["Properties"]
    assert key["KeySpec"] == "ECC_NIST_P256" and key["KeyUsage"] == "SIGN_VERIFY"
    assert synth.template["Resources"][_signing_key(synth.template)]["DeletionPolicy"] == "Retain"


def test_only_the_signing_tasks_roles_may_sign(synth: Synth) -> None:
    template = synth.template
    signing_key, roles = _signing_key(template), _task_roles(template)
    signing_roles = {roles[action] for action in SIGNING_ACTIONS}
    # Given every identity policy in the stack
    signers = {
        role["Ref"]
        for policy in _resources(template, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
        and any(a in ("kms:Sign", "kms:*") for a in _actions(statement))
        for role in policy["Properties"].get("Roles", [])
    }
    # Then only the backup, verify and restore task roles are allowed kms:Sign (the native
    # task writes unsigned evidence), on the signing key itself
    assert signers == signing_roles
    assert roles["native"] not in signers
    grants = [
        statement
        for policy in _resources(template, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "kms:Sign" in _actions(statement)
    ]
    assert {json.dumps(g["Resource"]) for g in grants} == {
        json.dumps({"Fn::GetAtt": [signing_key, "Arn"]})
    }
    # and the key policy denies kms:Sign to every other principal, whatever IAM allows
    statements = template["Resources"][signing_key]["Properties"]["KeyPolicy"]["Statement"]
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert _actions(deny) == ["kms:Sign"] and deny["Principal"] == {"AWS": "*"}
    ((operator, condition),) = deny["Condition"].items()
    assert operator == "ArnNotEquals"
    exempt = condition["aws:PrincipalArn"]
    assert sorted(json.dumps(a) for a in exempt) == sorted(
        json.dumps({"Fn::GetAtt": [role, "Arn"]}) for role in signing_roles
    )


def test_the_task_and_the_integrity_function_are_given_the_key(synth: Synth) -> None:
    template = synth.template
    signing_key = {"Fn::GetAtt": [_signing_key(template), "Arn"]}
    for definition in _resources(template, "AWS::ECS::TaskDefinition").values():
        env = {
            e["Name"]: e["Value"]
            for e in definition["Properties"]["ContainerDefinitions"][0]["Environment"]
        }
        assert env["BACKPROOF_SIGNING_KMS_KEY_ID"] == signing_key
    (integrity,) = [
        f
        for f in _resources(template, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "handlers.integrity.handler"
    ]
    variables = integrity["Properties"]["Environment"]["Variables"]
    assert variables["BACKPROOF_SIGNING_KMS_KEY_ID"] == signing_key
    # and the integrity function may read the public key and verify, never sign
    role = integrity["Properties"]["Role"]["Fn::GetAtt"][0]
    actions = {
        a
        for policy in _resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Resource"] == signing_key
        for a in _actions(statement)
    }
    assert actions == {"kms:GetPublicKey", "kms:Verify"}
