"""A database and a role whose own defaults (ALTER DATABASE … SET, ALTER ROLE … SET) differ
from the server's in every way that can trip a client: backup, verify and restore still work,
and the backup holds the same contents as one taken without those defaults."""

from __future__ import annotations

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
from backproof.jobs import operator_checks
from backproof.jobs.backup import BackupRequest, BackupResult, run_backup
from backproof.jobs.operator_checks import run_assertion
from backproof.jobs.verify import VerifyOptions, verify_backup
from backproof.model.checks import FAIL, PASS
from backproof.model.operator import Assertion
from backproof.pg.cluster import LocalCluster
from backproof.pg.target import Target
from backproof.store import open_store

from ..conftest import S3Store, SourceDatabase
from .conftest import assert_torn_down

# Set on the source and the target databases.
DATABASE_DEFAULTS = {
    "DateStyle": "SQL, DMY",
    "TimeZone": "Pacific/Chatham",
    "IntervalStyle": "sql_standard",
    "bytea_output": "escape",
    "extra_float_digits": "-15",
    "search_path": '"odd schema", public',
    "statement_timeout": "1ms",
    "lock_timeout": "1ms",
    "default_transaction_read_only": "on",
    "default_transaction_isolation": "serializable",
    "idle_in_transaction_session_timeout": "5ms",
    "client_encoding": "WIN1252",
    "array_nulls": "off",
    "standard_conforming_strings": "off",
}
# Set on the role the engine connects as; a role's defaults win over its database's.
ROLE_DEFAULTS = {
    "DateStyle": "German, MDY",
    "TimeZone": "America/St_Johns",
    "IntervalStyle": "iso_8601",
    "client_encoding": "LATIN1",
    "statement_timeout": "2ms",
    "idle_in_transaction_session_timeout": "3ms",
}

# The test's own sessions (setup and teardown) opt out of those defaults explicitly.
PLAIN = (
    "-c statement_timeout=0 -c default_transaction_read_only=off -c lock_timeout=0 "
    "-c idle_in_transaction_session_timeout=0"
)

DATA = """
CREATE SCHEMA "odd schema";
CREATE TABLE "odd schema".things (
    id serial PRIMARY KEY,
    born date NOT NULL,
    seen timestamptz NOT NULL,
    span interval NOT NULL,
    raw bytea,
    ratio float8,
    amount numeric(20, 6),
    tags text[],
    label text
);
INSERT INTO "odd schema".things (born, seen, span, raw, ratio, amount, tags, label)
SELECT date '2001-02-03' + g,
       timestamptz '2024-03-31 01:30:00+00' + g * interval '7 hours 3 minutes',
       make_interval(days => -g, hours => g % 5, secs => g / 7.0),
       decode(lpad(to_hex(g), 8, '0') || '00ff5c27', 'hex'),
       1.0 / (g + 2), g * 1.000001, ARRAY['a', NULL, 'b' || g],
       CASE g % 3 WHEN 0 THEN 'café' WHEN 1 THEN '東京' ELSE 'back\\slash ''quote''' END
FROM generate_series(1, 500) g;
CREATE TABLE "odd schema".notes (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text);
INSERT INTO "odd schema".notes (body) SELECT 'note ' || g FROM generate_series(1, 50) g;
"""


@dataclass
class Hostile:
    """A source database and a target database, both owned by a role with a password, both
    carrying DATABASE_DEFAULTS; the role carries ROLE_DEFAULTS."""

    cluster: LocalCluster
    role: str
    password: str
    source: str
    target: str

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.role}:{self.password}@127.0.0.1:{self.cluster.port}/{dbname}"

    def connect(self, dbname: str, **kwargs: Any) -> psycopg.Connection[Any]:
        params = {**self.cluster.connect_kwargs(dbname), "user": self.role}
        params.update(password=self.password, client_encoding="UTF8")
        return psycopg.connect(**params, options=PLAIN, **kwargs)

    def set_defaults(self) -> None:
        with superuser(self.cluster) as conn:
            for db in (self.source, self.target):
                for name, value in DATABASE_DEFAULTS.items():
                    conn.execute(
                        sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                            sql.Identifier(db), sql.Identifier(name), setting(name, value)
                        )
                    )
            for name, value in ROLE_DEFAULTS.items():
                conn.execute(
                    sql.SQL("ALTER ROLE {} SET {} = {}").format(
                        sql.Identifier(self.role), sql.Identifier(name), sql.Literal(value)
                    )
                )

    def reset_defaults(self) -> None:
        with superuser(self.cluster) as conn:
            for db in (self.source, self.target):
                conn.execute(sql.SQL("ALTER DATABASE {} RESET ALL").format(sql.Identifier(db)))
            conn.execute(sql.SQL("ALTER ROLE {} RESET ALL").format(sql.Identifier(self.role)))


def setting(name: str, value: str) -> sql.Composable:
    # A list setting takes a list; one quoted string would be a single (absent) schema.
    return sql.SQL(value) if name == "search_path" else sql.Literal(value)


def superuser(cluster: LocalCluster) -> psycopg.Connection[Any]:
    return psycopg.connect(**cluster.connect_kwargs(), options=PLAIN, autocommit=True)


@pytest.fixture
def hostile(source_db: SourceDatabase) -> Iterator[Hostile]:
    cluster = source_db.cluster
    token = secrets.token_hex(4)
    h = Hostile(cluster, f"app_{token}", secrets.token_hex(12), source_db.dbname, f"tgt_{token}")
    with superuser(cluster) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(h.role), sql.Literal(h.password)
            )
        )
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                *map(sql.Identifier, (h.source, h.role))
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(*map(sql.Identifier, (h.target, h.role)))
        )
    try:
        yield h
    finally:
        with superuser(cluster) as conn:
            for db in (h.source, h.target):
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
                )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(h.role)))


def backup(h: Hostile, s3: S3Store) -> BackupResult:
    store = open_store(s3.url, kms_key_id=s3.kms_key_id)
    return run_backup(BackupRequest(Target.from_url(h.url(h.source)), store, "hostile"))


def contents(result: BackupResult) -> dict[str, Any]:
    inv = result.manifest.inventory
    return {
        "tables": {t.qualified: (t.rows, t.fingerprint) for t in inv.tables},
        "sequences": {s.qualified: (s.bound, s.owned_by) for s in inv.sequences},
        "objects": inv.objects,
        "settings": inv.settings,
    }


def test_backup_verify_and_restore_ignore_database_and_role_defaults(
    hostile: Hostile,
    s3_store: S3Store,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given data owned by a role, in a database, both with defaults hostile to a client
    with hostile.connect(hostile.source, autocommit=True) as conn:
        conn.execute(DATA)
    with hostile.connect(hostile.target, autocommit=True) as conn:
        conn.execute("CREATE TABLE unrelated (id int)")  # the target is not empty
    hostile.set_defaults()
    with superuser(hostile.cluster) as conn:
        count = conn.execute("SELECT count(*) FROM pg_db_role_setting").fetchone()
    assert count == (3,)

    # When the engine backs up the source as that role
    result = backup(hostile, s3_store)
    backup_id = result.manifest.backup_id
    # Then it verifies by restore
    report = verify_backup(
        open_store(s3_store.url), backup_id, options=VerifyOptions(instance="local")
    )
    assert report.passed, [c for c in report.checks if c.verdict == FAIL]
    assert_torn_down(isolated_tmp)

    # And restores through the command into the existing hostile target database
    code = main(
        [
            "restore",
            backup_id,
            "--store",
            s3_store.url,
            "--target-url",
            hostile.url(hostile.target),
            "--clean",
            "--confirm",
            hostile.target,
            "--assert",
            'SELECT count(*) = 500 FROM "odd schema".things',
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and out["failed_checks"] == [], out
    assert out["safety_backup_id"]  # taken of the hostile target, too
    with hostile.connect(hostile.target) as conn:
        row = conn.execute(
            'SELECT tags[2] IS NULL, label FROM "odd schema".things WHERE id = 1'
        ).fetchone()
    assert row == (True, "東京")

    # And operator assertions there still run read-only, with their own timeout
    monkeypatch.setattr(operator_checks, "ASSERTION_TIMEOUT_MS", 200)
    with Target.from_url(hostile.url(hostile.target)).connect() as conn:
        writes = run_assertion(conn, Assertion("DELETE FROM unrelated RETURNING true"))
        sleeps = run_assertion(conn, Assertion("SELECT pg_sleep(2) IS NOT NULL"))
        fine = run_assertion(conn, Assertion('SELECT count(*) = 50 FROM "odd schema".notes'))
    assert writes.verdict == FAIL and "read-only transaction" in writes.detail
    assert sleeps.verdict == FAIL and "statement timeout" in sleeps.detail
    assert fine.verdict == PASS

    # And the backup holds exactly what a backup without those defaults holds
    hostile.reset_defaults()
    plain = backup(hostile, s3_store)
    assert contents(plain) == contents(result)
