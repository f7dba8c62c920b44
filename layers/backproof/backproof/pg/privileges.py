"""Owners and privileges of a database's objects, read from the catalogs by role NAME.

Runs inside the inventory's transaction (on the source: the dump's snapshot). Each object's
grants come from `aclexplode`, so OIDs never matter: one fact per (grantee, grantor,
privilege, grant option), with a NULL ACL read as its default (`acldefault`), since pg_dump
writes nothing for a default ACL and the restore then holds NULL again. A relation's facts
add its column grants (`pg_attribute.attacl`), its row-level security switches and its
policies (name, command, permissive, roles; not the expressions, which another server
version may print differently). The facts are sorted and hashed; the roles they name are
collected, so a restore knows which roles it needs.

Objects that belong to an extension are left out (the extension's script creates them), as
are the system schemas. Where the server itself owns an object that pg_dump leaves to the
server (the public schema before PostgreSQL 15, a range type's constructors), the bootstrap
superuser is named BOOTSTRAP on both sides: it is `postgres` on one server, `rdsadmin` or
`backproof` on another.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import psycopg

from ..model.privileges import (
    BOOTSTRAP,
    PRIVILEGES_ALGORITHM,
    PUBLIC,
    ObjectPrivileges,
    PrivilegeInventory,
)

_SYSTEM_NS = """
    n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
"""


def _not_member(catalog: str, oid: str) -> str:
    return (
        "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = "
        f"'{catalog}'::regclass AND d.objid = {oid} AND d.deptype = 'e')"
    )


def _role(oid: str, builtin: str = "false") -> str:
    """A role's name; PUBLIC for 0; BOOTSTRAP for OID 10 where the server owns the object."""
    return (
        f"CASE WHEN {oid} = 0 THEN '{PUBLIC}' WHEN {oid} = 10 AND {builtin} THEN '{BOOTSTRAP}' "
        f"ELSE pg_get_userbyid({oid})::text END"
    )


def _acl_facts(acl: str, builtin: str = "false", *prefix: str) -> str:
    """A JSON array of ["acl", *prefix, grantee, grantor, privilege, grantable] facts."""
    head = "".join(f", {p}" for p in prefix)
    return (
        "(SELECT coalesce(json_agg(json_build_array("
        f"'{'column' if prefix else 'acl'}'{head}, {_role('a.grantee', builtin)}, "
        f"{_role('a.grantor', builtin)}, a.privilege_type, a.is_grantable)), '[]'::json) "
        f"FROM aclexplode({acl}) a)"
    )


_RELATION_ACL = (
    "coalesce(c.relacl, acldefault((CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::\"char\", "
    "c.relowner))"
)
_RELATIONS_SQL = f"""
SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned_table'
         WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized_view' WHEN 'f' THEN 'foreign_table'
         ELSE 'sequence' END,
       n.nspname || '.' || c.relname,
       {_role("c.relowner")},
       json_build_array(
         {_acl_facts(_RELATION_ACL)},
         (SELECT coalesce(json_agg(f), '[]'::json) FROM pg_attribute att,
            LATERAL json_array_elements({_acl_facts("att.attacl", "false", "att.attname")}) f
          WHERE att.attrelid = c.oid AND att.attnum > 0 AND NOT att.attisdropped
            AND att.attacl IS NOT NULL),
         json_build_array(json_build_array('rls', c.relrowsecurity, c.relforcerowsecurity)),
         (SELECT coalesce(json_agg(json_build_array('policy', p.polname, p.polcmd,
                   p.polpermissive, array(SELECT {_role("r")} FROM unnest(p.polroles) r))),
                 '[]'::json)
          FROM pg_policy p WHERE p.polrelid = c.oid))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND c.relpersistence <> 't' AND {_SYSTEM_NS}
  AND {_not_member("pg_class", "c.oid")}
"""

_BUILTIN_SCHEMA = "n.nspname = 'public'"
_SCHEMA_ACL = "coalesce(n.nspacl, acldefault('n', n.nspowner))"
_SCHEMAS_SQL = f"""
SELECT 'schema', n.nspname, {_role("n.nspowner", _BUILTIN_SCHEMA)},
       json_build_array({_acl_facts(_SCHEMA_ACL, _BUILTIN_SCHEMA)})
FROM pg_namespace n
WHERE {_SYSTEM_NS} AND {_not_member("pg_namespace", "n.oid")}
"""

# A range type's constructor functions belong to the bootstrap superuser whoever created the
# type, and pg_dump recreates them with the type rather than on their own.
_BUILTIN_FUNCTION = """EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
    AND d.objid = p.oid AND d.refclassid = 'pg_type'::regclass AND d.deptype = 'i')"""
_FUNCTION_ACL = "coalesce(p.proacl, acldefault('f', p.proowner))"
_FUNCTIONS_SQL = f"""
SELECT 'function', p.oid::regprocedure::text, {_role("p.proowner", _BUILTIN_FUNCTION)},
       json_build_array({_acl_facts(_FUNCTION_ACL, _BUILTIN_FUNCTION)})
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE {_SYSTEM_NS} AND {_not_member("pg_proc", "p.oid")}
"""

_DEFAULT_ACL_SQL = f"""
SELECT 'default_privileges',
       pg_get_userbyid(d.defaclrole)::text
         || coalesce(' in schema ' || n.nspname, '') || ' on '
         || CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences'
              WHEN 'f' THEN 'functions' WHEN 'T' THEN 'types' WHEN 'n' THEN 'schemas'
              ELSE d.defaclobjtype::text END,
       {_role("d.defaclrole")},
       json_build_array({_acl_facts("d.defaclacl")})
FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
"""

# Positions of role names in each kind of fact.
_ROLE_FIELDS = {"acl": (1, 2), "column": (2, 3)}


def _named_roles(fact: list[Any]) -> list[str]:
    if fact[0] == "policy":
        return [str(r) for r in fact[4]]
    return [str(fact[i]) for i in _ROLE_FIELDS.get(str(fact[0]), ())]


def _introduced_later(fact: list[Any], unknown: frozenset[str]) -> bool:
    if not unknown:
        return False
    if fact[0] == "acl":
        return str(fact[3]) in unknown
    return fact[0] == "column" and str(fact[4]) in unknown


def _digest(facts: list[str]) -> str:
    return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:32]


def readable(facts: list[str]) -> str:
    """The facts as `grantee=privilege[*]/grantor` and the like, for a report."""
    out = []
    for text in facts:
        f = json.loads(text)
        if f[0] == "acl":
            out.append(f"{f[1]}={f[3]}{'*' if f[4] else ''}/{f[2]}")
        elif f[0] == "column":
            out.append(f"{f[1]}: {f[2]}={f[4]}{'*' if f[5] else ''}/{f[3]}")
        elif f[0] == "rls":
            out.append(f"rls={'on' if f[1] else 'off'}{' forced' if f[2] else ''}")
        else:
            out.append(f"policy {f[1]} ({f[2]}{'' if f[3] else ', restrictive'}) to {f[4]}")
    return "; ".join(out)


# Privileges a major introduced, and the major: a newer server's defaults grant them (an owner
# holds MAINTAIN on 17+), so a restore of an older source into it must not count them.
PRIVILEGES_SINCE = {"MAINTAIN": 17}


def _newer_than(major: int | None) -> frozenset[str]:
    if major is None:
        return frozenset()
    return frozenset(p for p, since in PRIVILEGES_SINCE.items() if since > major)


def take_privileges(
    conn: psycopg.Connection[Any], *, source_major: int | None = None
) -> PrivilegeInventory:
    """Owners and grants of every schema, relation, function and default privilege, in the
    connection's current transaction (search_path pinned to pg_catalog by the caller). With
    `source_major` (reading a restore of a source of that major), privileges that major did not
    have are left out."""
    unknown = _newer_than(source_major)
    inventory = PrivilegeInventory(algorithm=PRIVILEGES_ALGORITHM)
    roles: set[str] = set()
    grants = 0
    for query in (_SCHEMAS_SQL, _RELATIONS_SQL, _FUNCTIONS_SQL, _DEFAULT_ACL_SQL):
        for kind, name, owner, groups in conn.execute(query.encode()).fetchall():
            facts_list = [
                fact for group in groups for fact in group if not _introduced_later(fact, unknown)
            ]
            for fact in facts_list:
                if fact[0] == "policy":
                    fact[4] = sorted(fact[4])
            grants += sum(1 for f in facts_list if f[0] in ("acl", "column"))
            facts = sorted(json.dumps(f, separators=(",", ":")) for f in facts_list)
            roles.add(owner)
            for fact in facts_list:
                roles.update(_named_roles(fact))
            inventory.objects.append(ObjectPrivileges(kind, name, owner, _digest(facts)))
            inventory.readable[(kind, name)] = readable(facts)
            inventory.counts[kind] = inventory.counts.get(kind, 0) + 1
    inventory.objects.sort(key=lambda o: (o.kind, o.name))
    inventory.counts["grants"] = grants
    inventory.roles = sorted(roles - {PUBLIC, BOOTSTRAP})
    return inventory
