"""Rolling back an operator restore puts its target back exactly as it was before: every table,
row and object of the safety backup that restore took, and nothing the restore brought."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from backproof.cli import main
from backproof.errors import BackupNotFound, BadInput, RestoreFailed
from backproof.jobs.checks import compare_inventories
from backproof.jobs.restore import RestoreRequest, restore_backup
from backproof.jobs.rollback import RollbackRequest, drop_statements, rollback_restore
from backproof.model.checks import PASS
from backproof.pg.inventory import take_inventory
from backproof.pg.restore import PgRestore
from backproof.store import SAFETY, BackupStore, open_store, safety_name
from backproof.store.records import read_restore_record
from tests.conftest import S3Store, SourceDatabase, take_backup


def seed_source(db: SourceDatabase) -> None:
    db.execute(
        "CREATE TABLE public.orders (id bigint PRIMARY KEY, note text);"
        "INSERT INTO public.orders SELECT g, 'order ' || g FROM generate_series(1, 300) g;"
        "CREATE SCHEMA sales; CREATE TABLE sales.lines (order_id bigint REFERENCES "
        "public.orders, qty int); INSERT INTO sales.lines SELECT g % 300 + 1, g "
        "FROM generate_series(1, 400) g;"
        "CREATE FUNCTION public.total() RETURNS bigint LANGUAGE sql AS "
        "'SELECT sum(qty) FROM sales.lines';"
    )


@pytest.fixture
def staging(source_db: SourceDatabase) -> Any:
    """A second database in the same cluster: the restore target, with its own contents."""
    name = f"{source_db.dbname}_staging"
    source_db.cluster.create_database(name)
    target = SourceDatabase(source_db.cluster, name)
    target.execute(
        "CREATE TABLE public.orders (id bigint PRIMARY KEY, note text);"
        "INSERT INTO public.orders VALUES (1, 'stale'), (2, 'stale');"
        "CREATE TABLE public.notes (id serial PRIMARY KEY, body text);"
        "INSERT INTO public.notes (body) VALUES ('kept by staging'), ('and this');"
        "CREATE VIEW public.recent AS SELECT id FROM public.notes;"
        "SELECT lo_from_bytea(0, 'a large object');"
    )
    yield target
    with psycopg.connect(**source_db.cluster.connect_kwargs(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def restore_into(store: BackupStore, backup_id: str, target: SourceDatabase) -> Any:
    return restore_backup(
        store,
        RestoreRequest(
            backup_id=backup_id,
            target_url=target.url,
            database="shop",
            clean=True,
            confirm=target.dbname,
        ),
    )


def rollback(target: SourceDatabase, restore_id: str, **options: Any) -> RollbackRequest:
    return RollbackRequest(restore_id=restore_id, target_url=target.url, **options)


def safety_manifest(store: BackupStore, target: SourceDatabase, backup_id: str) -> Any:
    name = safety_name("127.0.0.1", target.cluster.port, target.dbname)
    return store.load_manifest(store.find(backup_id, name, namespace=SAFETY))


def test_rollback_restores_exactly_the_state_before_the_restore(
    s3_store: S3Store, source_db: SourceDatabase, staging: SourceDatabase
) -> None:
    seed_source(source_db)
    store, backup = take_backup(source_db, s3_store, name="shop")
    # Given a restore over staging, which took a safety backup first and has an id
    restored = restore_into(store, backup.manifest.backup_id, staging)
    assert restored.report.passed and restored.safety_backup_id and restored.restore_id
    record = read_restore_record(store, restored.restore_id)
    assert record["status"] == "finished" and record["kind"] == "restore"
    assert record["safety_backup"]["backup_id"] == restored.safety_backup_id
    # and people went on writing to it afterwards
    staging.execute("INSERT INTO public.orders VALUES (9999, 'written after the restore')")
    # When that restore is rolled back (its target's name typed back)
    result = rollback_restore(
        store, rollback(staging, restored.restore_id, clean=True, confirm=staging.dbname)
    )
    # Then the rollback's own checks compared the whole database with the safety backup
    assert result.report is not None and result.report.passed, result.report.failures
    assert result.report.kind == "rollback"
    # and the target's fingerprints, row counts and objects equal the safety backup's manifest
    expected = safety_manifest(store, staging, restored.safety_backup_id).inventory
    with staging.connect() as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        found = take_inventory(conn, fingerprints=True)
    compared = compare_inventories(expected, found)
    assert compared and all(c.verdict == PASS for c in compared), [
        c for c in compared if c.verdict != PASS
    ]
    with staging.connect() as conn:
        assert conn.execute("SELECT note FROM public.orders ORDER BY id").fetchall() == [
            ("stale",),
            ("stale",),
        ]
        assert conn.execute("SELECT to_regclass('sales.lines')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone() == (1,)
    # and what the rollback replaced is kept too, in its own safety backup and record
    assert result.safety_backup_id and result.safety_backup_id != restored.safety_backup_id
    own = read_restore_record(store, result.restore_id or "")
    assert own["kind"] == "rollback" and own["rolls_back"] == restored.restore_id
    assert own["database"] == "shop" and own["safety_backup"]["namespace"] == SAFETY


def test_rollback_has_the_rules_of_a_restore(
    s3_store: S3Store, source_db: SourceDatabase, staging: SourceDatabase
) -> None:
    seed_source(source_db)
    store, backup = take_backup(source_db, s3_store, name="shop")
    restored = restore_into(store, backup.manifest.backup_id, staging)
    rid = restored.restore_id or ""
    # A dry run (with the flags the real run needs) plans, and touches nothing
    confirmed = {"clean": True, "confirm": staging.dbname}
    plan = rollback_restore(store, rollback(staging, rid, dry_run=True, **confirmed)).plan
    assert plan.backup_id == restored.safety_backup_id and plan.safety_backup
    with staging.connect() as conn:
        assert conn.execute("SELECT count(*) FROM public.orders").fetchone() == (300,)
    # Without the target's name typed back, nothing happens
    with pytest.raises(BadInput, match="--clean --confirm"):
        rollback_restore(store, rollback(staging, rid))
    with pytest.raises(BadInput, match="replaces its objects"):
        rollback_restore(store, rollback(staging, rid, clean=True, confirm="shop"))
    # Another database is never "put back" from this target's safety backup
    with pytest.raises(BadInput, match="puts back only the database that restore replaced"):
        rollback_restore(store, RollbackRequest(rid, source_db.url, clean=True, confirm="x"))
    # Unknown ids, and restores that replaced nothing, cannot be rolled back
    with pytest.raises(BackupNotFound):
        rollback_restore(store, rollback(staging, "20261121T050312.123Z-1a2b3c"))
    with pytest.raises(BadInput, match="not a restore id"):
        rollback_restore(store, rollback(staging, "yesterday"))
    with staging.connect() as conn:
        assert conn.execute("SELECT count(*) FROM public.orders").fetchone() == (300,)


def test_rollback_from_the_command_line(
    s3_store: S3Store,
    source_db: SourceDatabase,
    staging: SourceDatabase,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed_source(source_db)
    take_backup(source_db, s3_store, name="shop")
    common = ["--store", s3_store.url, "--target-url", staging.url, "--json"]
    code = main(["restore", "latest", *common, "--clean", "--confirm", staging.dbname])
    restored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and restored["restore_id"] and restored["safety_backup_id"]
    rid = restored["restore_id"]
    confirmed = ["--clean", "--confirm", staging.dbname]
    code = main(["restore", "--rollback", rid, *common, *confirmed, "--dry-run"])
    planned = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and planned["dry_run"] and planned["restore_id"] is None
    assert planned["plan"]["backup_id"] == restored["safety_backup_id"]
    code = main(["restore", "--rollback", rid, *common, *confirmed])
    done = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, done
    assert done["verdict"] == "verified" and done["rolls_back"] == rid
    # naming a backup as well as --rollback is refused
    assert main(["restore", "latest", "--rollback", rid, *common]) == 2


def test_drop_statements_are_the_head_of_the_script() -> None:
    script = "\n".join(
        [
            "-- dump",
            "SET statement_timeout = 0;",
            "SELECT pg_catalog.set_config('search_path', '', false);",
            "ALTER TABLE IF EXISTS ONLY public.o DROP CONSTRAINT IF EXISTS o_pkey;",
            "DROP TABLE IF EXISTS public.o;",
            "DROP SCHEMA IF EXISTS sales;",
            "CREATE SCHEMA sales;",
            "DROP TABLE IF EXISTS never.reached;",
        ]
    )
    assert drop_statements(script) == [
        "ALTER TABLE IF EXISTS ONLY public.o DROP CONSTRAINT IF EXISTS o_pkey;",
        "DROP TABLE IF EXISTS public.o;",
        "DROP SCHEMA IF EXISTS sales;",
    ]


def test_a_restore_that_fails_half_way_says_how_to_roll_it_back(
    s3_store: S3Store,
    source_db: SourceDatabase,
    staging: SourceDatabase,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_source(source_db)
    take_backup(source_db, s3_store, name="shop")

    def dies(self: Any, **_: Any) -> Any:  # pg_restore dies once the target is half replaced
        with self.target.connect(autocommit=True) as conn:
            conn.execute("DROP VIEW public.recent; DROP TABLE public.notes")
        raise RestoreFailed("pg_restore was killed")

    real_run = PgRestore.run
    monkeypatch.setattr(PgRestore, "run", dies)
    common = ["--store", s3_store.url, "--target-url", staging.url, "--json"]
    code = main(["restore", "latest", *common, "--clean", "--confirm", staging.dbname])
    error = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1 and error["error"] == "RestoreFailed"
    # The error names the restore and the command that puts the target back
    restore_id = error["message"].split("restore id ", 1)[1].split(":", 1)[0]
    assert f"backproof restore --rollback {restore_id}" in error["message"]
    # and that rollback puts back what the half-done restore destroyed
    monkeypatch.setattr(PgRestore, "run", real_run)
    store = open_store(s3_store.url, kms_key_id=s3_store.kms_key_id)
    confirmed = rollback(staging, restore_id, clean=True, confirm=staging.dbname)
    rolled = rollback_restore(store, confirmed)
    assert rolled.report is not None and rolled.report.passed
    with staging.connect() as conn:
        assert conn.execute("SELECT count(*) FROM public.notes").fetchone() == (2,)
