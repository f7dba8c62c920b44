"""Owners and privileges of a database's objects, as the manifest records them.

Recorded in the dump's snapshot by pg/privileges.py and compared after a restore by role
NAME, never by OID. Each object's grants are normalised (one entry per grantee, grantor,
privilege and grant option, sorted; a NULL ACL is its default, so `GRANT` then `REVOKE`
compares equal to never granting) and kept as a digest; a relation's digest also covers its
column grants, row-level security flags and policies (name, command, mode, roles).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PRIVILEGES_ALGORITHM = "aclexplode-by-name-sha256/1"
# Kinds of object, in the order a report lists them.
RELATION_KINDS = (
    "table",
    "partitioned_table",
    "view",
    "materialized_view",
    "foreign_table",
    "sequence",
)
KINDS = ("schema", *RELATION_KINDS, "function", "default_privileges")
# Stands for the bootstrap superuser where PostgreSQL itself owns an object (the public
# schema before 15): the bootstrap superuser is `postgres` on one server, `backproof` on the
# other, and pg_dump leaves such ownership to the server.
BOOTSTRAP = "@bootstrap"
PUBLIC = "PUBLIC"


@dataclass
class ObjectPrivileges:
    """One object: its owner's name and the digest of its normalised grants."""

    kind: str  # one of KINDS
    name: str  # schema.name; a function's signature; "ROLE [in schema S] on tables"
    owner: str
    acl: str  # digest of the normalised grants (relations: plus columns, RLS, policies)

    @property
    def subject(self) -> str:
        return f"{self.kind.replace('_', ' ')} {self.name}"


@dataclass
class PrivilegeInventory:
    """Every object's owner and grants, the roles they name, and counts per kind."""

    algorithm: str = PRIVILEGES_ALGORITHM
    objects: list[ObjectPrivileges] = field(default_factory=list)
    # Every role an owner, grant, policy or default privilege names (PUBLIC excluded): the
    # roles a restore with ownership needs on the target.
    roles: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # objects per kind, "grants": entries
    # Readable normalised grants per (kind, name): kept in memory for a report's detail on
    # the restored side, never written to the manifest.
    readable: dict[tuple[str, str], str] = field(default_factory=dict, repr=False, compare=False)

    def by_key(self) -> dict[tuple[str, str], ObjectPrivileges]:
        return {(o.kind, o.name): o for o in self.objects}

    def to_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "objects": [
                {"kind": o.kind, "name": o.name, "owner": o.owner, "acl": o.acl}
                for o in self.objects
            ],
            "roles": list(self.roles),
            "counts": dict(self.counts),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrivilegeInventory:
        return cls(
            algorithm=str(data.get("algorithm", "")),
            objects=[ObjectPrivileges(**o) for o in data.get("objects", [])],
            roles=[str(r) for r in data.get("roles", [])],
            counts={k: int(v) for k, v in data.get("counts", {}).items()},
        )
