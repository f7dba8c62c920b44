"""Roles, owners and grants: stored beside each backup (never a password), created on the
throwaway server before the data, restored with the data, and compared object by object;
an operator restore names the roles its target lacks before touching anything."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from backproof.cli import main
from backproof.model.roles import Membership, RoleInfo, RoleSet
from backproof.pg.roles import create_roles
from backproof.pg.target import Target

from ..conftest import S3Store, SourceDatabase, take_backup
from .conftest import assert_torn_down, failed_checks, failed_subjects

PASSWORD = "hunter2-never-stored"

# Five roles (a hierarchy: analyst and auditor in readers, owner in reporting), objects owned
# by four of them, column grants, default privileges, RLS with policies naming roles, a
# function and a schema with grants. Each owner may CREATE in its objects' schema, as it
# must be for a restore by a role that is not a superuser (as on RDS).
GRANTS = """
CREATE ROLE {owner} NOLOGIN CREATEDB;
CREATE ROLE {reporting} NOLOGIN;
CREATE ROLE {readers} NOLOGIN;
CREATE ROLE {analyst} LOGIN PASSWORD '{password}' CONNECTION LIMIT 5;
CREATE ROLE {auditor} NOLOGIN NOINHERIT;
GRANT {readers} TO {analyst};
GRANT {readers} TO {auditor} WITH ADMIN OPTION;
GRANT {reporting} TO {owner};

CREATE SCHEMA app AUTHORIZATION {owner};
CREATE SCHEMA reporting AUTHORIZATION {reporting};
GRANT USAGE ON SCHEMA app TO {readers}, {reporting};
GRANT USAGE, CREATE ON SCHEMA app TO {auditor};
GRANT USAGE ON SCHEMA reporting TO {analyst};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA app GRANT SELECT ON TABLES TO {readers};
ALTER DEFAULT PRIVILEGES FOR ROLE {auditor} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

SET ROLE {owner};
CREATE TABLE app.accounts (id serial PRIMARY KEY, holder text NOT NULL, balance numeric,
                           note text);
INSERT INTO app.accounts (holder, balance, note)
SELECT 'holder ' || i, i * 10, 'note ' || i FROM generate_series(1, 50) i;
GRANT SELECT (id, holder, balance) ON app.accounts TO {analyst};
GRANT UPDATE (balance) ON app.accounts TO {auditor};
GRANT SELECT ON app.accounts TO {reporting};
ALTER TABLE app.accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON app.accounts FOR SELECT TO {analyst} USING (holder = current_user);
CREATE POLICY audit_all ON app.accounts TO {auditor}, {readers} USING (true);
CREATE TABLE app.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, what text);
INSERT INTO app.events (what) SELECT 'event ' || i FROM generate_series(1, 20) i;
RESET ROLE;

SET ROLE {reporting};
CREATE VIEW reporting.balances AS SELECT id, balance FROM app.accounts;
GRANT SELECT ON reporting.balances TO {analyst};
RESET ROLE;

SET ROLE {auditor};
CREATE FUNCTION app.audit_total() RETURNS numeric LANGUAGE sql AS 'SELECT 42::numeric';
GRANT EXECUTE ON FUNCTION app.audit_total() TO {readers};
CREATE SEQUENCE app.tickets;
GRANT USAGE ON SEQUENCE app.tickets TO {analyst};
RESET ROLE;
"""


@dataclass
class Roles:
    owner: str
    reporting: str
    readers: str
    analyst: str
    auditor: str

    @property
    def names(self) -> list[str]:
        return [self.owner, self.reporting, self.readers, self.analyst, self.auditor]


def drop_roles(db: SourceDatabase, names: list[str]) -> None:
    """Roles are the cluster's: remove them, and what they own in any database, after a test."""
    idents = sql.SQL(", ").join(map(sql.Identifier, names))
    with db.connect(autocommit=True) as conn:
        present = [
            r[0]
            for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (names,))
        ]
        databases = [
            r[0]
            for r in conn.execute("SELECT datname FROM pg_database WHERE datallowconn").fetchall()
        ]
    if not present:
        return
    idents = sql.SQL(", ").join(map(sql.Identifier, present))
    for dbname in databases:
        kwargs = {**db.cluster.connect_kwargs(dbname), "autocommit": True}
        with psycopg.connect(**kwargs) as conn:
            for name in present:  # one at a time: several at once trip over default ACLs
                conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(name)))
    with db.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(idents))


@pytest.fixture
def roles(source_db: SourceDatabase) -> Iterator[Roles]:
    prefix = f"bp_{secrets.token_hex(3)}"
    made = Roles(
        *(f"{prefix}_{n}" for n in ("owner", "reporting", "readers", "analyst", "auditor"))
    )
    yield made
    drop_roles(source_db, [*made.names, f"{prefix}_gone"])


@pytest.fixture
def granted(source_db: SourceDatabase, roles: Roles) -> SourceDatabase:
    source_db.execute(GRANTS.format(password=PASSWORD, **roles.__dict__))
    return source_db


def verify(
    s3: S3Store, backup_id: str, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any]]:
    code = main(["verify", backup_id, "--store", s3.url, "--json", *extra])
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    report = json.loads(
        s3.s3.get_object(Bucket=s3.bucket, Key=summary["report_key"])["Body"].read()
    )
    return code, report


def checks_named(report: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [c for c in report["checks"] if c["check"] == check]


def stored(s3: S3Store, key: str) -> bytes:
    return bytes(s3.s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read())


def put(s3: S3Store, key: str, body: bytes) -> None:
    s3.s3.put_object(
        Bucket=s3.bucket,
        Key=key,
        Body=body,
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=s3.kms_key_id,
    )


def edit_manifest(s3: S3Store, key: str, change: Any) -> None:
    data = json.loads(stored(s3, key))
    change(data)
    put(s3, key, json.dumps(data).encode())


@pytest.mark.parametrize("restore_as", ["rds-master", "superuser"])
def test_roles_owners_and_grants_are_restored_and_each_object_checked(
    granted: SourceDatabase,
    roles: Roles,
    s3_store: S3Store,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
    restore_as: str,
) -> None:
    # Given a backup of a database whose objects belong to several roles, with grants
    _, result = take_backup(granted, s3_store)
    privileges = result.manifest.inventory.privileges
    assert privileges is not None and result.manifest.roles is not None
    assert {roles.owner, roles.reporting, roles.auditor} <= {o.owner for o in privileges.objects}
    assert set(roles.names) <= set(privileges.roles)
    # When it is verified on a throwaway server that has none of those roles, restoring as
    # RDS's master user would (not a superuser) or as a superuser
    code, report = verify(s3_store, result.manifest.backup_id, capsys, "--restore-as", restore_as)
    # Then the roles were created first, owners and grants restored, and every object agrees
    assert code == 0 and report["verdict"] == "verified", [
        c for c in report["checks"] if c["verdict"] == "fail"
    ]
    created = {c["subject"]: c for c in checks_named(report, "roles")}
    assert {created[n]["found"] for n in roles.names} == {"created"}
    owners = checks_named(report, "owner")
    grants = checks_named(report, "privileges")
    assert owners and grants and all(c["verdict"] == "pass" for c in owners + grants)
    counted = sum(int(c["subject"].split()[0]) for c in grants)
    assert counted == len(privileges.objects)
    assert not [m for m in report["restore_messages"] if m["fatal"]]
    assert_torn_down(isolated_tmp)


def test_one_grant_missing_from_the_archive_fails_naming_the_object(
    granted: SourceDatabase,
    roles: Roles,
    s3_store: S3Store,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given backup A, then one more GRANT and backup B
    _, first = take_backup(granted, s3_store)
    granted.execute(f"GRANT INSERT ON app.accounts TO {roles.analyst}")
    _, second = take_backup(granted, s3_store)
    # When B's archive is replaced by A's, and B's manifest forged to vouch for it (B's
    # inventory still says the grant exists)
    archive = stored(s3_store, first.manifest.archive.key)
    put(s3_store, second.manifest.archive.key, archive)

    def forge(m: dict[str, Any]) -> None:
        m["archive"].update(
            size=len(archive),
            sha256=hashlib.sha256(archive).hexdigest(),
            raw_size=first.manifest.archive.raw_size,
        )

    edit_manifest(s3_store, second.manifest_key, forge)
    code, report = verify(s3_store, second.manifest.backup_id, capsys)
    # Then integrity passes, and the restore fails on that one object's privileges
    assert code == 1 and report["verdict"] == "failed"
    assert failed_checks(report) == {"privileges"}
    assert failed_subjects(report, "privileges") == {"table app.accounts"}
    detail = next(c["detail"] for c in checks_named(report, "privileges") if c["verdict"] == "fail")
    assert roles.analyst in detail
    assert_torn_down(isolated_tmp)


def test_manifest_of_version_1_still_verifies_without_owners(
    source_db: SourceDatabase,
    roles: Roles,
    s3_store: S3Store,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a backup whose manifest is rewritten as version 1 wrote it: no roles, no owners
    source_db.execute(
        f"CREATE ROLE {roles.owner} NOLOGIN; CREATE TABLE t (id int PRIMARY KEY, v text);"
        f"INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 30) i;"
        f"ALTER TABLE t OWNER TO {roles.owner}; GRANT SELECT ON t TO {roles.owner};"
    )
    _, result = take_backup(source_db, s3_store)

    def as_version_1(m: dict[str, Any]) -> None:
        m["format_version"] = 1
        m.pop("roles")
        m["inventory"].pop("privileges")

    edit_manifest(s3_store, result.manifest_key, as_version_1)
    # When it is verified
    code, report = verify(s3_store, result.manifest.backup_id, capsys)
    # Then it passes as before: restored without owners and grants, nothing compared of them
    assert code == 0 and report["verdict"] == "verified", failed_checks(report)
    assert [c["verdict"] for c in checks_named(report, "roles")] == ["skip"]
    assert not checks_named(report, "owner") and not checks_named(report, "privileges")
    assert not checks_named(report, "integrity.roles")
    assert_torn_down(isolated_tmp)


@pytest.fixture
def target_db(source_db: SourceDatabase) -> Iterator[SourceDatabase]:
    name = f"tgt_{secrets.token_hex(4)}"
    source_db.cluster.create_database(name)
    yield SourceDatabase(source_db.cluster, name)
    with source_db.connect(autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def restore(
    s3: S3Store, target: SourceDatabase, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any]]:
    code = main(
        ["restore", "latest", "--store", s3.url, "--target-url", target.url, "--json", *extra]
    )
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


def test_operator_restore_names_missing_roles_and_creates_them_when_asked(
    source_db: SourceDatabase,
    target_db: SourceDatabase,
    roles: Roles,
    s3_store: S3Store,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a backup of a table owned by a role, with a grant to another, after which both
    # roles disappear from the server
    gone = roles.owner.replace("_owner", "_gone")
    source_db.execute(
        f"CREATE ROLE {gone} NOLOGIN; CREATE ROLE {roles.readers} NOLOGIN;"
        f"CREATE TABLE ledger (id int PRIMARY KEY); INSERT INTO ledger VALUES (1), (2);"
        f"ALTER TABLE ledger OWNER TO {gone}; GRANT SELECT ON ledger TO {roles.readers};"
    )
    take_backup(source_db, s3_store)
    source_db.execute(
        f"REASSIGN OWNED BY {gone} TO CURRENT_USER; DROP OWNED BY {gone}, {roles.readers}"
    )
    source_db.execute(f"DROP ROLE {gone}, {roles.readers}")
    # When it is restored into an existing database of that server
    code, out = restore(s3_store, target_db, capsys)
    # Then it is refused before anything is touched, naming the roles and the choices
    assert code == 2
    assert gone in out["message"] and roles.readers in out["message"]
    assert "--create-roles" in out["message"] and "--no-owners" in out["message"]
    with target_db.connect() as conn:
        assert conn.execute("SELECT to_regclass('public.ledger')").fetchone() == (None,)
    # When the operator asks for the roles to be created
    code, out = restore(s3_store, target_db, capsys, "--create-roles")
    # Then they are (NOLOGIN, no password), and owner and grant are as in the backup
    assert code == 0 and out["failed_checks"] == [], out
    assert out["plan"]["roles_to_create"] == sorted([gone, roles.readers])
    with target_db.connect() as conn:
        owner, acl = conn.execute(
            "SELECT pg_get_userbyid(relowner), relacl::text FROM pg_class WHERE relname = 'ledger'"
        ).fetchone()  # type: ignore[misc]
        login, password = conn.execute(
            "SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = %s", (gone,)
        ).fetchone()  # type: ignore[misc]
    assert owner == gone and f"{roles.readers}=r/{gone}" in acl
    assert login is False and password is None


def test_operator_restore_without_owners_when_chosen(
    source_db: SourceDatabase,
    target_db: SourceDatabase,
    roles: Roles,
    s3_store: S3Store,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gone = roles.owner.replace("_owner", "_gone")
    source_db.execute(
        f"CREATE ROLE {gone} NOLOGIN; CREATE TABLE ledger (id int PRIMARY KEY);"
        f"ALTER TABLE ledger OWNER TO {gone};"
    )
    take_backup(source_db, s3_store)
    source_db.execute(f"REASSIGN OWNED BY {gone} TO CURRENT_USER; DROP ROLE {gone}")
    code, out = restore(s3_store, target_db, capsys, "--no-owners")
    assert code == 0 and out["failed_checks"] == [], out
    assert out["plan"]["owners"] is False
    with target_db.connect() as conn:
        owner = conn.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'ledger'"
        ).fetchone()
    assert owner == (target_db.cluster.connect_kwargs()["user"],)


def test_tampered_roles_object_fails_integrity_before_any_instance(
    granted: SourceDatabase,
    s3_store: S3Store,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a backup whose roles.json was changed after it was written
    _, result = take_backup(granted, s3_store)
    assert result.manifest.roles is not None
    key = result.manifest.roles.key
    put(
        s3_store, key, stored(s3_store, key).replace(b'"superuser": false', b'"superuser": true', 1)
    )
    # When it is verified
    code, report = verify(s3_store, result.manifest.backup_id, capsys)
    # Then integrity fails on the roles, and no instance was ever started
    assert code == 1 and failed_checks(report) == {"integrity.roles"}
    assert report["instance"] == {} and "restore_seconds" not in report["timings"]
    assert_torn_down(isolated_tmp)


def test_no_password_or_hash_is_ever_stored(
    granted: SourceDatabase, roles: Roles, s3_store: S3Store
) -> None:
    # Given a role with a password (stored by the server as a SCRAM hash)
    with granted.connect() as conn:
        (hashed,) = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (roles.analyst,)
        ).fetchone()  # type: ignore[misc]
    assert hashed.startswith("SCRAM-SHA-256$")
    # When the database is backed up
    _, result = take_backup(granted, s3_store)
    assert result.manifest.roles is not None
    body = stored(s3_store, result.manifest.roles.key)
    manifest = stored(s3_store, result.manifest_key)
    # Then the roles are recorded, with no password, hash or mask anywhere
    recorded = {r["name"]: r for r in json.loads(body)["roles"]}
    assert recorded[roles.analyst]["login"] is True
    assert recorded[roles.analyst]["connection_limit"] == 5
    assert {m["group"] for m in recorded[roles.auditor]["member_of"]} == {roles.readers}
    assert not any(name.startswith("pg_") for name in recorded)
    for blob in (body, manifest):
        for secret in (PASSWORD.encode(), hashed.encode(), b"SCRAM-SHA-256", b"********"):
            assert secret not in blob
    head = s3_store.s3.head_object(Bucket=s3_store.bucket, Key=result.manifest.roles.key)
    assert head["ServerSideEncryption"] == "aws:kms"


def test_a_login_that_is_not_a_superuser_creates_what_it_may_and_says_what_it_could_not(
    source_db: SourceDatabase, roles: Roles
) -> None:
    # Given a login with CREATEROLE only (as RDS's master user), and recorded roles of which
    # one is a superuser with replication and one is a member of the other
    creator = roles.owner.replace("_owner", "_gone")  # dropped with the others afterwards
    source_db.execute(f"CREATE ROLE {creator} LOGIN CREATEROLE PASSWORD 'pw-{creator}'")
    recorded = RoleSet(
        [
            RoleInfo(roles.auditor, superuser=True, replication=True, connection_limit=3),
            RoleInfo(roles.readers, inherit=False, member_of=[Membership(roles.auditor)]),
        ],
        bootstrap_superuser="postgres",
        server_major=15,
    )
    login = Target.from_params(
        **{**source_db.cluster.connect_kwargs(), "user": creator, "password": f"pw-{creator}"}
    )
    # When it creates them
    created, results = create_roles(
        login, recorded, [roles.auditor, roles.readers, "pg_monitor"], required=[roles.readers]
    )
    # Then both exist (NOLOGIN), the superuser one without what the login may not give, said
    # as a warning; the membership holds, and the login may act as each created role
    verdicts = {r.subject: (r.verdict, r.detail) for r in results}
    assert sorted(created) == sorted([roles.auditor, roles.readers])
    assert verdicts["pg_monitor"][0] == "pass"
    assert verdicts[roles.readers] == ("pass", "")
    verdict, detail = verdicts[roles.auditor]
    assert verdict == "warn" and "SUPERUSER" in detail and "REPLICATION" in detail
    with source_db.connect() as conn:
        rows = conn.execute(
            "SELECT rolname, rolsuper, rolcanlogin, rolconnlimit, rolinherit FROM pg_roles "
            "WHERE rolname = ANY(%s) ORDER BY 1",
            ([roles.auditor, roles.readers],),
        ).fetchall()
        member = conn.execute(
            "SELECT pg_has_role(%s, %s, 'MEMBER'), pg_has_role(%s, %s, 'USAGE')",
            (roles.readers, roles.auditor, creator, roles.auditor),
        ).fetchone()
    assert sorted(rows) == sorted(
        [(roles.auditor, False, False, 3, True), (roles.readers, False, False, -1, False)]
    )
    assert member == (True, True)
