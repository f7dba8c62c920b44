"""Roles and privileges in the manifest and in roles.json: round trips, older manifests,
refusal of anything malformed."""

from __future__ import annotations

import json

import pytest

from backproof.errors import IntegrityError
from backproof.model.manifest import Manifest, StoredObject
from backproof.model.privileges import ObjectPrivileges, PrivilegeInventory
from backproof.model.roles import Membership, RoleInfo, RoleSet

from .test_manifest import sample_manifest


def with_privileges() -> Manifest:
    manifest = sample_manifest()
    manifest.roles = StoredObject("k/roles.json", 120, "b" * 64)
    manifest.inventory.privileges = PrivilegeInventory(
        objects=[ObjectPrivileges("table", "public.t", "app", "c" * 32)],
        roles=["app", "reader"],
        counts={"table": 1, "grants": 2},
        readable={("table", "public.t"): "reader=SELECT/app"},
    )
    return manifest


def test_owners_grants_and_the_roles_object_round_trip() -> None:
    manifest = with_privileges()
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest
    assert again.inventory.privileges is not None
    assert again.inventory.privileges.by_key()[("table", "public.t")].owner == "app"
    # The readable grants stay in memory: the manifest holds digests only
    assert b"reader=SELECT" not in manifest.to_json()


def test_a_version_1_manifest_reads_with_nothing_to_compare() -> None:
    data = json.loads(with_privileges().to_json())
    data["format_version"] = 1
    del data["roles"]
    del data["inventory"]["privileges"]
    old = Manifest.from_json(json.dumps(data))
    assert old.roles is None and old.inventory.privileges is None


def test_malformed_roles_record_is_refused() -> None:
    data = json.loads(with_privileges().to_json())
    data["roles"]["sha256"] = "not-a-digest"
    with pytest.raises(IntegrityError, match="malformed roles"):
        Manifest.from_json(json.dumps(data))


def test_roles_json_round_trips_and_knows_each_roles_groups() -> None:
    roles = RoleSet(
        [
            RoleInfo("analyst", login=True, member_of=[Membership("readers", inherit=True)]),
            RoleInfo("readers", member_of=[Membership("staff", admin=True)]),
            RoleInfo("staff"),
            RoleInfo("other"),
        ],
        bootstrap_superuser="postgres",
        server_major=16,
    )
    again = RoleSet.from_json(roles.to_json())
    assert again == roles
    assert again.with_groups(["analyst"]) == ["analyst", "readers", "staff"]
    assert again.role("readers") is not None and again.role("nobody") is None
    assert RoleInfo("x", superuser=True, bypassrls=True).privileged_attributes == [
        "SUPERUSER",
        "BYPASSRLS",
    ]


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"format": "other"}',
        b'{"format": "backproof.roles", "format_version": 9}',
        b'{"format": "backproof.roles", "format_version": 1, "roles": [{"nom": "x"}]}',
    ],
)
def test_malformed_roles_json_is_an_integrity_error(raw: bytes) -> None:
    with pytest.raises(IntegrityError, match="malformed"):
        RoleSet.from_json(raw, where="roles.json")
