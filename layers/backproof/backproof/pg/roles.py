"""Roles: reading a cluster's (from `pg_roles`, never `pg_authid`), creating missing ones.

Reading works for any login, RDS's master user included: `pg_roles` hides passwords, and
nothing here ever selects one. Creating gives every role NOLOGIN and no password, keeps the
other attributes where the creating role may give them, and records what it could not do as
check results (a non-superuser with CREATEROLE cannot create SUPERUSER, REPLICATION or
BYPASSRLS roles) rather than failing. A creating role that is not a superuser then grants
itself membership in each role it created, so `ALTER ... OWNER TO` works: PostgreSQL 16+
wants the SET option on that membership, older ones plain membership (with INHERIT, so grants
made as the owner work too).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ..model.checks import FAIL, PASS, WARN, CheckResult
from ..model.roles import Membership, RoleInfo, RoleSet
from .target import Target

_ROLES_SQL = """
SELECT r.rolname, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolinherit, r.rolcanlogin,
       r.rolreplication, r.rolbypassrls, r.rolconnlimit
FROM pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY r.rolname COLLATE "C"
"""
_MEMBERS_SQL = """
SELECT m.rolname, g.rolname, am.admin_option, {options}, coalesce(gr.rolname, '')
FROM pg_auth_members am JOIN pg_roles m ON m.oid = am.member JOIN pg_roles g ON g.oid = am.roleid
LEFT JOIN pg_roles gr ON gr.oid = am.grantor
WHERE m.rolname !~ '^pg_'
ORDER BY m.rolname COLLATE "C", g.rolname COLLATE "C", gr.rolname COLLATE "C"
"""
_OPTIONS_16 = "am.inherit_option, am.set_option"
_OPTIONS_OLD = "NULL::boolean, NULL::boolean"
_ME_SQL = """
SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls
FROM pg_roles WHERE rolname = current_user
"""
# Attributes a non-superuser may not be able to give, dropped in this order of retries.
_RETRY_WITHOUT = (("SUPERUSER", "REPLICATION", "BYPASSRLS"), ("CREATEDB", "CREATEROLE"))


def read_roles(conn: psycopg.Connection[Any]) -> RoleSet:
    """Every role but the predefined `pg_*` ones, with memberships; no passwords."""
    major = conn.info.server_version // 10000
    roles = {}
    for name, sup, createdb, createrole, inherit, login, repl, bypass, limit in conn.execute(
        _ROLES_SQL.encode()
    ).fetchall():
        roles[name] = RoleInfo(
            name, sup, createdb, createrole, inherit, login, repl, bypass, int(limit)
        )
    options = _OPTIONS_16 if major >= 16 else _OPTIONS_OLD
    for member, group, admin, inherit, set_, grantor in conn.execute(
        _MEMBERS_SQL.format(options=options).encode()
    ).fetchall():
        if member in roles:
            roles[member].member_of.append(Membership(group, admin, inherit, set_, grantor))
    boot = conn.execute("SELECT rolname FROM pg_roles WHERE oid = 10").fetchone()
    return RoleSet(list(roles.values()), str(boot[0]) if boot else "", major)


def role_names(conn: psycopg.Connection[Any]) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}


def missing_roles(target: Target, names: Iterable[str]) -> list[str]:
    """Those of `names` that do not exist on the server `target` connects to."""
    with target.connect(autocommit=True) as conn:
        present = role_names(conn)
    return sorted(set(names) - present)


@dataclass
class _Creator:
    conn: psycopg.Connection[Any]
    me: str
    superuser: bool
    major: int

    def create(self, role: RoleInfo) -> tuple[list[str], str | None]:
        """CREATE ROLE, retrying without what this login may not give: (dropped, error)."""
        wanted = role.privileged_attributes
        dropped: list[str] = []
        error: str | None = None
        for without in ((), *_RETRY_WITHOUT):
            newly = [a for a in without if a in wanted and a not in dropped]
            if without and not newly:
                continue
            dropped += newly
            keep = [a for a in wanted if a not in dropped]
            words = ["NOLOGIN", "INHERIT" if role.inherit else "NOINHERIT", *keep]
            statement = sql.SQL("CREATE ROLE {} {} CONNECTION LIMIT {}").format(
                sql.Identifier(role.name),
                sql.SQL(" ".join(words)),
                sql.Literal(role.connection_limit),
            )
            try:
                self.conn.execute(statement)
                return dropped, None
            except psycopg.errors.InsufficientPrivilege as exc:
                error = _first_line(exc)
            except psycopg.Error as exc:
                return dropped, _first_line(exc)
        return dropped, error

    def grant(self, group: str, member: str, m: Membership | None) -> str | None:
        """GRANT group TO member with the recorded options (the SET option and INHERIT for
        this login's own memberships); the error's first line, or None."""
        if self.major >= 16:
            inherit = True if m is None or m.inherit is None else m.inherit
            options = [
                f"INHERIT {str(inherit).upper()}",
                f"SET {str(True if m is None or m.set is None else m.set).upper()}",
            ]
            if m is not None and m.admin:
                options.append("ADMIN TRUE")
            suffix = sql.SQL(" WITH " + ", ".join(options))
        else:
            suffix = sql.SQL(" WITH ADMIN OPTION" if m is not None and m.admin else "")
        statement = sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(member))
        try:
            self.conn.execute(statement + suffix)
        except psycopg.Error as exc:
            return _first_line(exc)
        return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def create_roles(
    admin: Target, roles: RoleSet, names: Iterable[str], *, required: Iterable[str] = ()
) -> tuple[list[str], list[CheckResult]]:
    """Create those of `names` the server lacks (NOLOGIN, no password), then their recorded
    memberships, then (not being a superuser) this login's membership in each. Returns the
    roles created and one "roles" result per role: failed if a `required` role (one the
    database's objects name) is missing afterwards, else a warning for what could not be
    given."""
    needed = set(required)
    results: list[CheckResult] = []
    with admin.connect(autocommit=True) as conn:
        row = conn.execute(_ME_SQL).fetchone()
        assert row is not None
        creator = _Creator(conn, str(row[0]), bool(row[1]), conn.info.server_version // 10000)
        present = role_names(conn)
        created: list[str] = []
        notes: dict[str, list[str]] = {}
        for name in sorted(set(names)):
            role = roles.role(name)
            if name in present:
                results.append(CheckResult("roles", name, "present", "present", PASS))
                continue
            if role is None:
                results.append(_missing(name, name in needed, "the backup records no such role"))
                continue
            dropped, error = creator.create(role)
            if error is not None:
                results.append(_missing(name, name in needed, error))
                continue
            created.append(name)
            present.add(name)
            if dropped:
                notes.setdefault(name, []).append(
                    f"created without {', '.join(dropped)}: {admin.user or 'this login'} may "
                    "not give them"
                )
        _memberships(creator, roles, created, present, notes)
        for name in created:
            detail = "; ".join(notes.get(name, []))
            verdict = WARN if detail else PASS
            results.append(CheckResult("roles", name, "created", "created", verdict, detail))
    return created, results


def _missing(name: str, required: bool, why: str) -> CheckResult:
    return CheckResult(
        "roles",
        name,
        "created",
        "missing",
        FAIL if required else WARN,
        why + ("" if required else " (no object of this database names it)"),
    )


def _memberships(
    creator: _Creator,
    roles: RoleSet,
    created: list[str],
    present: set[str],
    notes: dict[str, list[str]],
) -> None:
    """The recorded memberships that involve a created role, and (as a non-superuser) this
    login's own membership in each created role."""
    fresh = set(created)
    for role in roles.roles:
        for m in role.member_of:
            if not ({role.name, m.group} & fresh) or not {role.name, m.group} <= present:
                continue
            error = creator.grant(m.group, role.name, m)
            if error is not None:
                note = f"membership in {m.group} not granted: {error}"
                notes.setdefault(role.name if role.name in fresh else m.group, []).append(note)
    if creator.superuser:
        return
    for name in created:
        error = creator.grant(name, creator.me, None)
        if error is not None:
            notes.setdefault(name, []).append(f"{creator.me} could not join it: {error}")
