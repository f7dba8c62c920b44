"""Owners and grants of a restored database, compared with the manifest by role name.

Two checks: "owner" (each object's owner) and "privileges" (the digest of its normalised
grants; a relation's also covers column grants, row-level security and policies). Objects
that agree are counted in one passing result per kind; each object that differs gets its
own failing result naming it, with the restored grants in readable form.
"""

from __future__ import annotations

from ..model.checks import FAIL, PASS, SKIP, CheckResult
from ..model.manifest import Inventory
from ..model.privileges import KINDS, RELATION_KINDS, ObjectPrivileges, PrivilegeInventory

NOT_RESTORED = "ownership and grants were not restored (--no-owners, or unrecorded roles)"


def compare_privileges(
    expected: Inventory,
    found: Inventory,
    *,
    tables: set[tuple[str, str]] | None = None,
    restored: bool = True,
) -> list[CheckResult]:
    """Owner and privileges of every object the manifest lists (with `tables`, of those
    relations only). Nothing when the manifest recorded none (an older backup); one skipped
    result each when ownership and grants were not restored."""
    want = expected.privileges
    if want is None:
        return []
    if not restored:
        return [
            CheckResult(check, "*", "restored", "not restored", SKIP, NOT_RESTORED)
            for check in ("owner", "privileges")
        ]
    got = found.privileges or PrivilegeInventory()
    names = {f"{s}.{n}" for s, n in tables} if tables is not None else None
    have = got.by_key()
    results: list[CheckResult] = []
    agreed: dict[tuple[str, str], int] = {}
    for obj in want.objects:
        if names is not None and (obj.kind not in RELATION_KINDS or obj.name not in names):
            continue
        differences = _differences(obj, have.get((obj.kind, obj.name)), got)
        results.extend(differences)
        for check in ("owner", "privileges"):
            if not any(r.check == check for r in differences):
                agreed[(check, obj.kind)] = agreed.get((check, obj.kind), 0) + 1
    order = {k: i for i, k in enumerate(KINDS)}
    for (check, kind), count in sorted(
        agreed.items(), key=lambda x: (x[0][0], order.get(x[0][1], 99))
    ):
        plural = (
            f"{kind.replace('_', ' ')}s"
            if not kind.endswith("privileges")
            else kind.replace("_", " ")
        )
        results.append(CheckResult(check, f"{count} {plural}", "as recorded", "as recorded", PASS))
    return results


def _differences(
    want: ObjectPrivileges, got: ObjectPrivileges | None, found: PrivilegeInventory
) -> list[CheckResult]:
    subject = want.subject
    if got is None:
        return [
            CheckResult("owner", subject, want.owner, None, FAIL, "not in the restored database")
        ]
    results = []
    if got.owner != want.owner:
        results.append(
            CheckResult("owner", subject, want.owner, got.owner, FAIL, "owned by another role")
        )
    if got.acl != want.acl:
        shown = found.readable.get((got.kind, got.name), "")
        results.append(
            CheckResult(
                "privileges",
                subject,
                want.acl,
                got.acl,
                FAIL,
                f"grants differ from the source's; restored: {shown or '(none)'}",
            )
        )
    return results
