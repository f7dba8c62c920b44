"""Evaluate the synthesized identity policies: may a role do an action on a resource?

Resources are resolved to ARN text (a reference to a resource stays `<LogicalId.Attribute>`,
pseudo parameters become the test account and region), then matched the way IAM matches them:
`*` and `?` over the whole ARN, explicit Deny first. Conditions are held against the request
context a test gives; a condition on a key the context lacks does not hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from infra.compute import ACTION_TAG

from .asl import PSEUDO, placeholder

REGION, ACCOUNT = PSEUDO["AWS::Region"], PSEUDO["AWS::AccountId"]
# How a test spells the secret RDS made for a temporary instance, and that instance.
RDS_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!db-0a1b2c3d-4e5f"
TEMPORARY_INSTANCE = f"arn:aws:rds:{REGION}:{ACCOUNT}:db:bp-5f0c9a"
TAGGED_BY_RDS = "secretsmanager:ResourceTag/aws:rds:primaryDBInstanceArn"


def text(node: Any) -> str:
    """A policy value as ARN text."""
    if isinstance(node, str):
        return node
    if "Fn::Join" in node:
        separator, parts = node["Fn::Join"]
        return str(separator).join(text(part) for part in parts)
    if "Ref" in node or "Fn::GetAtt" in node:
        return placeholder(node)
    return json.dumps(node, sort_keys=True)  # any other intrinsic: an opaque token


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, wanted in tests.items():
            if key not in context:
                return False
            values = [text(v) for v in _list(wanted)]
            found = context[key]
            if operator in ("StringEquals", "ArnEquals"):
                matched = found in values
            elif operator in ("StringLike", "ArnLike"):
                matched = any(fnmatchcase(found, v) for v in values)
            elif operator in ("StringNotEquals", "ArnNotEquals"):
                matched = found not in values
            else:
                raise AssertionError(f"no evaluation of condition operator {operator}")
            if not matched:
                return False
    return True


@dataclass
class Statement:
    effect: str
    actions: list[str]
    resources: list[str]
    condition: dict[str, Any] = field(default_factory=dict)

    def covers(self, action: str, resource: str, context: dict[str, str]) -> bool:
        return (
            any(fnmatchcase(action.lower(), a.lower()) for a in self.actions)
            and any(fnmatchcase(resource, r) for r in self.resources)
            and _condition_holds(self.condition, context)
        )


@dataclass
class RolePolicy:
    """Every statement of every identity policy attached to one role."""

    role: str
    statements: list[Statement]

    @classmethod
    def of(cls, template: dict[str, Any], role: str) -> RolePolicy:
        statements = [
            Statement(
                s["Effect"],
                _list(s["Action"]),
                [text(r) for r in _list(s["Resource"])],
                s.get("Condition", {}),
            )
            for policy in template["Resources"].values()
            if policy["Type"] == "AWS::IAM::Policy"
            and {"Ref": role} in policy["Properties"].get("Roles", [])
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        ]
        assert statements, f"no policy is attached to {role}"
        return cls(role, statements)

    def allows(self, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
        """Allowed by some statement and denied by none (conditions against `context`)."""
        ctx = context or {}
        if any(s.effect == "Deny" and s.covers(action, resource, ctx) for s in self.statements):
            return False
        return any(s.effect == "Allow" and s.covers(action, resource, ctx) for s in self.statements)

    def explicitly_denies(self, action: str, resource: str) -> bool:
        return any(s.effect == "Deny" and s.covers(action, resource, {}) for s in self.statements)

    def reads_secret(self, arn: str, *, tagged_with: str | None = None) -> bool:
        """GetSecretValue on `arn`; `tagged_with`: the DB instance RDS tagged the secret with."""
        context = {TAGGED_BY_RDS: tagged_with} if tagged_with else {}
        return self.allows("secretsmanager:GetSecretValue", arn, context)

    def granted(self, action: str) -> set[str]:
        """Every resource pattern an Allow names for `action` (the grant as written)."""
        return {
            r
            for s in self.statements
            if s.effect == "Allow"
            and any(fnmatchcase(action.lower(), a.lower()) for a in s.actions)
            for r in s.resources
        }


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def task_definitions(template: dict[str, Any]) -> dict[str, str]:
    """Logical id of each task definition, by the task action it is tagged for."""
    found = {}
    for logical_id, res in resources(template, "AWS::ECS::TaskDefinition").items():
        (action,) = [t["Value"] for t in res["Properties"]["Tags"] if t["Key"] == ACTION_TAG]
        found[action] = logical_id
    return found


def role_id(template: dict[str, Any], action: str) -> str:
    """Logical id of the task role of `action`'s task definition."""
    props = template["Resources"][task_definitions(template)[action]]["Properties"]
    return str(props["TaskRoleArn"]["Fn::GetAtt"][0])


def task_role(template: dict[str, Any], action: str) -> RolePolicy:
    return RolePolicy.of(template, role_id(template, action))


def backup_bucket(template: dict[str, Any]) -> str:
    """The backup bucket's ARN as resolved policies spell it (objects: f"{arn}/{key}")."""
    (logical_id,) = [
        k for k in resources(template, "AWS::S3::Bucket") if k.startswith("StorageBackups")
    ]
    return f"<{logical_id}.Arn>"
