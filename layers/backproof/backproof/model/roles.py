"""The source cluster's roles, stored beside each backup as `roles.json`.

Built from `pg_roles` and `pg_auth_members` (readable by any login, RDS included, where
`pg_authid` is not), so it never holds a password or a password hash. Predefined `pg_*` roles
exist on every server and are not recorded; every other role is, RDS's own included.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import IntegrityError

ROLES_FORMAT = "backproof.roles"
ROLES_FORMAT_VERSION = 1


@dataclass
class Membership:
    """Membership of a role in `group`. `inherit`/`set` are per-grant options (PostgreSQL
    16+); None on older servers, where the member's own INHERIT attribute decides."""

    group: str
    admin: bool = False
    inherit: bool | None = None
    set: bool | None = None
    grantor: str = ""


@dataclass
class RoleInfo:
    name: str
    superuser: bool = False
    createdb: bool = False
    createrole: bool = False
    inherit: bool = True
    login: bool = False
    replication: bool = False
    bypassrls: bool = False
    connection_limit: int = -1
    member_of: list[Membership] = field(default_factory=list)

    @property
    def privileged_attributes(self) -> list[str]:
        """The attributes only some roles may give (SQL keywords), in a fixed order."""
        names = ("superuser", "createdb", "createrole", "replication", "bypassrls")
        return [n.upper() for n in names if getattr(self, n)]


@dataclass
class RoleSet:
    roles: list[RoleInfo] = field(default_factory=list)
    bootstrap_superuser: str = ""  # the role with OID 10 (`postgres`, `rdsadmin`, ...)
    server_major: int = 0

    def role(self, name: str) -> RoleInfo | None:
        return next((r for r in self.roles if r.name == name), None)

    def with_groups(self, names: Iterable[str]) -> list[str]:
        """`names` and, transitively, every recorded role they are members of (sorted)."""
        seen: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            role = self.role(name)
            if role is not None:
                todo.extend(m.group for m in role.member_of)
        return sorted(seen)

    def to_json(self) -> bytes:
        data = {
            "format": ROLES_FORMAT,
            "format_version": ROLES_FORMAT_VERSION,
            "bootstrap_superuser": self.bootstrap_superuser,
            "server_major": self.server_major,
            "roles": [asdict(r) for r in self.roles],
        }
        return json.dumps(data, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, where: str = "roles") -> RoleSet:
        """Parse and validate; anything malformed raises IntegrityError naming the problem."""
        try:
            data: Any = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") != ROLES_FORMAT:
                raise ValueError(f"format is not {ROLES_FORMAT!r}")
            if data.get("format_version") != ROLES_FORMAT_VERSION:
                raise ValueError(f"unknown format version {data.get('format_version')!r}")
            roles = [
                RoleInfo(
                    **{k: v for k, v in r.items() if k != "member_of"},
                    member_of=[Membership(**m) for m in r.get("member_of", [])],
                )
                for r in data["roles"]
            ]
            return cls(roles, str(data["bootstrap_superuser"]), int(data["server_major"]))
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"{where} is malformed: {exc}") from exc
