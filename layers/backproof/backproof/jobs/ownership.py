"""Roles, owners and grants across a backup's life.

Backup: the source's roles (pg/roles.py, read in the dump's snapshot) are stored beside the
archive as roles.json, written through the store (so encrypted like the rest) and vouched
for by the manifest's size and SHA-256; integrity checks them before anything is restored.

Verification: the roles the database's objects name, and the groups they belong to, are
created on the throwaway server before the data (NOLOGIN, no password), and pg_restore keeps
owners and grants, which are then compared with the manifest (jobs/privilege_checks.py).

Operator restore: owners and grants are kept by default. Roles the target lacks are named
before anything is touched; the operator chooses to create them (`--create-roles`) or to
restore without ownership and grants (`--no-owners`).

A backup taken before roles were recorded (no roles.json, no owners in the manifest) is
restored as before: without ownership and grants.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ..errors import BadInput, IntegrityError, RestoreFailed
from ..model.checks import FAIL, PASS, SKIP, CheckResult
from ..model.manifest import Manifest, StoredObject
from ..model.report import VerificationReport
from ..model.roles import RoleSet
from ..pg.roles import create_roles, missing_roles
from ..pg.target import Target
from ..store import ROLES_NAME, BackupStore, StoredBackup

NOT_RECORDED = (
    "the backup records no roles, owners or grants (taken by an older backproof): restored "
    "without ownership and grants"
)


def store_roles(store: BackupStore, directory: str, roles: RoleSet, *, tier: str) -> StoredObject:
    """Write roles.json in the backup's directory; what the manifest records about it."""
    data = roles.to_json()
    key = directory + ROLES_NAME
    store.put_bytes(key, data, tier=tier)
    return StoredObject(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest())


def roles_integrity(
    store: BackupStore, stored: StoredBackup, manifest: Manifest
) -> tuple[RoleSet | None, list[CheckResult]]:
    """roles.json as the manifest describes it: inside the backup, same size and SHA-256,
    encrypted, well-formed. No result for a manifest that records no roles."""
    info = manifest.roles
    if info is None:
        return None, []
    found, problem, roles = _read_roles(store, stored, info)
    expected = {"size": info.size, "sha256": info.sha256}
    verdict = FAIL if problem else PASS
    return roles, [CheckResult("integrity.roles", "roles", expected, found, verdict, problem)]


def _read_roles(
    store: BackupStore, stored: StoredBackup, info: StoredObject
) -> tuple[object, str, RoleSet | None]:
    """(what was found, the problem or "", the roles if there is no problem)."""
    if not info.key.startswith(stored.prefix):
        return info.key, "the manifest points outside its backup", None
    try:
        head = store.head(info.key)
        data = store.get_bytes(info.key)
    except IntegrityError as exc:
        return None, str(exc), None
    found = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if found != {"size": info.size, "sha256": info.sha256}:
        return found, "the stored roles are not the ones the manifest describes", None
    if head.encryption.get("type") in (None, "", "none"):
        return found, "the roles are stored unencrypted", None
    try:
        return found, "", RoleSet.from_json(data, where=info.key)
    except IntegrityError as exc:
        return found, str(exc), None


def load_roles(store: BackupStore, stored: StoredBackup, manifest: Manifest) -> RoleSet | None:
    """The verified roles (IntegrityError if they no longer match), or None if unrecorded."""
    roles, results = roles_integrity(store, stored, manifest)
    failed = [r for r in results if r.failed]
    if failed:
        raise IntegrityError(f"roles of backup {stored.backup_id}: {failed[0].detail}")
    return roles


def prepare_roles(
    admin: Target, manifest: Manifest, roles: RoleSet | None, report: VerificationReport
) -> bool:
    """Before a verification's restore: create the roles the database's objects name, and
    the groups they belong to, on the throwaway server. True when owners and grants are to
    be restored (the backup recorded them); results go into `report`."""
    privileges = manifest.inventory.privileges
    if roles is None or privileges is None:
        report.add(CheckResult("roles", "*", "recorded", "not recorded", SKIP, NOT_RECORDED))
        return False
    _, results = create_roles(
        admin, roles, roles.with_groups(privileges.roles), required=privileges.roles
    )
    report.add(*results)
    return True


@dataclass
class OwnerPlan:
    """How an operator restore treats ownership and grants."""

    owners: bool  # pg_restore keeps owners and grants
    create: list[str] = field(default_factory=list)  # roles to create first
    note: str = ""  # why owners are not kept, when the operator did not choose that


def plan_owners(
    target: Target, manifest: Manifest, *, keep_owners: bool | None, create_roles: bool
) -> OwnerPlan:
    """Decide before anything is touched. `keep_owners`: None (the default: keep them when
    the backup recorded its roles), True (--keep-owners), False (--no-owners). BadInput
    naming the roles the target lacks, unless the operator chose what to do about them."""
    if keep_owners is False:
        if create_roles:
            raise BadInput("--create-roles and --no-owners contradict each other: choose one")
        return OwnerPlan(False)
    privileges = manifest.inventory.privileges
    if privileges is None or manifest.roles is None:
        if keep_owners:  # the operator vouches that the roles exist
            return OwnerPlan(True)
        return OwnerPlan(False, note=NOT_RECORDED)
    needed = missing_roles(target, privileges.roles)
    if needed and not create_roles:
        raise BadInput(
            f"the target server lacks roles that own or are granted objects of backup "
            f"{manifest.backup_id}: {', '.join(needed)}. Choose --create-roles (creates them "
            "NOLOGIN, without passwords) or --no-owners (restores without ownership and grants)"
        )
    return OwnerPlan(True, create=needed)


def roles_for_restore(
    target: Target, roles: RoleSet | None, create: list[str], note: str = ""
) -> list[CheckResult]:
    """Create the roles an operator restore needs (`create`, and the groups they belong to
    that the target lacks); RestoreFailed, before pg_restore runs, if one cannot be created.
    `note`: why owners and grants are not restored, recorded as a skipped result."""
    if note:
        return [CheckResult("roles", "*", "recorded", "not recorded", SKIP, note)]
    if not create:
        return []
    if roles is None:
        raise RestoreFailed("the backup records no roles to create; nothing was restored")
    wanted = missing_roles(target, roles.with_groups(create))
    _, results = create_roles(target, roles, wanted, required=create)
    failed = [r for r in results if r.failed]
    if failed:
        raise RestoreFailed(
            "could not create roles the backup's objects need, nothing was restored: "
            + "; ".join(f"{r.subject}: {r.detail}" for r in failed)
        )
    return results
