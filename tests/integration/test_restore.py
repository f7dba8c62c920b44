"""`backproof restore`: dry run, full and selective restores, the safety backup and the
confirmation a destructive restore needs, integrity before the target is touched."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backproof.cli import main
from backproof.pg.cluster import LocalCluster
from backproof.store import SAFETY, open_store

from ..conftest import S3Store, SourceDatabase, take_backup

SHOP = """
CREATE SCHEMA sales;
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE sales.orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,
                           created_at timestamptz NOT NULL DEFAULT now(), total numeric(12,2));
CREATE INDEX orders_customer_idx ON sales.orders (customer_id);
CREATE TABLE notes (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text);
INSERT INTO customers (name) SELECT 'customer ' || i FROM generate_series(1, 100) i;
INSERT INTO sales.orders (customer_id, total) SELECT 1 + i % 100, i FROM generate_series(1, 2000) i;
INSERT INTO notes (body) SELECT 'note ' || i FROM generate_series(1, 10) i;
"""


@pytest.fixture
def target_db(source_db: SourceDatabase) -> Iterator[SourceDatabase]:
    name = f"tgt_{secrets.token_hex(4)}"
    source_db.cluster.create_database(name)
    yield SourceDatabase(source_db.cluster, name)
    with psycopg.connect(**source_db.cluster.connect_kwargs(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def restore(
    s3: S3Store,
    backup_id: str,
    target: SourceDatabase,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> tuple[int, dict[str, Any] | None]:
    code = main(
        ["restore", backup_id, "--store", s3.url, "--target-url", target.url, "--json", *extra]
    )
    out = capsys.readouterr().out.strip().splitlines()
    return code, (json.loads(out[-1]) if out else None)


def scalar(db: SourceDatabase, query: str) -> Any:
    with db.connect() as conn:
        row = conn.execute(query.encode()).fetchone()
        return row[0] if row else None


def relations(db: SourceDatabase) -> int:
    return int(
        scalar(
            db,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
            "n.oid = c.relnamespace WHERE n.nspname IN ('public', 'sales')",
        )
    )


def test_dry_run_touches_nothing(
    source_db: SourceDatabase,
    target_db: SourceDatabase,
    s3_store: S3Store,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source_db.execute(SHOP)
    _, result = take_backup(source_db, s3_store)
    code, out = restore(s3_store, result.manifest.backup_id, target_db, capsys, "--dry-run")
    assert code == 0 and out is not None and out["dry_run"] is True
    assert out["plan"]["rows"] == 2110 and out["plan"]["target_tables"] == 0
    assert relations(target_db) == 0


def test_full_restore_into_empty_database_checks_out(
    source_db: SourceDatabase,
    target_db: SourceDatabase,
    s3_store: S3Store,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source_db.execute(SHOP)
    take_backup(source_db, s3_store)
    code, out = restore(s3_store, "latest", target_db, capsys)
    assert out is not None and out["failed_checks"] == [] and code == 0
    assert scalar(target_db, "SELECT count(*) FROM sales.orders") == 2000
    assert out["safety_backup_id"] is None
    assert list(isolated_tmp.iterdir()) == []


def test_non_empty_target_needs_clean_and_the_typed_back_name(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a backup, then damage to the source database itself
    source_db.execute(SHOP)
    store, result = take_backup(source_db, s3_store)
    source_db.execute("DELETE FROM sales.orders WHERE id > 1500; UPDATE notes SET body = 'lost'")
    # When restoring over it without --clean, or with the wrong name typed back: refused
    assert restore(s3_store, result.manifest.backup_id, source_db, capsys)[0] == 2
    assert (
        restore(
            s3_store, result.manifest.backup_id, source_db, capsys, "--clean", "--confirm", "wrong"
        )[0]
        == 2
    )
    assert scalar(source_db, "SELECT count(*) FROM sales.orders") == 1500
    # When confirmed: a safety backup first, then the restore, then the checks
    code, out = restore(
        s3_store,
        result.manifest.backup_id,
        source_db,
        capsys,
        "--clean",
        "--confirm",
        source_db.dbname,
    )
    assert out is not None and out["failed_checks"] == [] and code == 0
    assert scalar(source_db, "SELECT count(*) FROM sales.orders") == 2000
    assert scalar(source_db, "SELECT count(*) FROM notes WHERE body = 'lost'") == 0
    # The safety backup lives apart, filed by target (instance and database), never `latest`
    target = f"127.0.0.1-{source_db.cluster.port}-{source_db.dbname}"
    safety = store.list_backups(target, namespace=SAFETY)
    assert [b.backup_id for b in safety] == [out["safety_backup_id"]]
    assert safety[0].manifest is not None and safety[0].manifest.tier == "safety"
    assert safety[0].manifest.inventory.table("sales", "orders").rows == 1500  # type: ignore[union-attr]
    assert out["safety_backup_id"] not in {b.backup_id for b in store.list_backups()}


def test_selective_restore_brings_back_one_table_with_its_indexes(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    source_db.execute(SHOP)
    _, result = take_backup(source_db, s3_store)
    source_db.execute(
        "DELETE FROM sales.orders WHERE id > 10; INSERT INTO notes (body) VALUES ('new')"
    )
    code, out = restore(
        s3_store,
        result.manifest.backup_id,
        source_db,
        capsys,
        "--table",
        "sales.orders",
        "--clean",
        "--confirm",
        source_db.dbname,
    )
    assert out is not None and out["failed_checks"] == [] and code == 0, out
    assert scalar(source_db, "SELECT count(*) FROM sales.orders") == 2000
    assert scalar(source_db, "SELECT count(*) FROM notes") == 11  # untouched
    assert (
        scalar(source_db, "SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_customer_idx'")
        == 1
    )
    assert (
        scalar(
            source_db,
            "SELECT count(*) FROM pg_constraint WHERE conname = 'orders_customer_id_fkey'",
        )
        == 1
    )


def test_corrupt_backup_is_refused_before_the_target_is_touched(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    source_db.execute(SHOP)
    _, result = take_backup(source_db, s3_store)
    key = result.manifest.archive.key
    body = s3_store.s3.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read()
    s3_store.s3.put_object(
        Bucket=s3_store.bucket,
        Key=key,
        Body=body[:-1] + b"\0",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=s3_store.kms_key_id,
    )
    source_db.execute("DELETE FROM notes WHERE id > 5")
    code = main(
        [
            "restore",
            result.manifest.backup_id,
            "--store",
            s3_store.url,
            "--target-url",
            source_db.url,
            "--clean",
            "--confirm",
            source_db.dbname,
        ]
    )
    assert code == 1
    assert "integrity.sha256" in capsys.readouterr().err
    assert scalar(source_db, "SELECT count(*) FROM notes") == 5
    assert [b.backup_id for b in open_store(s3_store.url).list_backups()] == [
        result.manifest.backup_id
    ]  # no safety backup either


def test_selective_restore_of_a_referenced_table_re_adds_the_foreign_keys(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a backup, then a damaged parent table that other tables reference
    source_db.execute(SHOP)
    _, result = take_backup(source_db, s3_store)
    source_db.execute("UPDATE customers SET name = name || ' (damaged)' WHERE id <= 10")
    # When only that table is restored over the damage
    code, out = restore(
        s3_store,
        result.manifest.backup_id,
        source_db,
        capsys,
        "--table",
        "customers",
        "--clean",
        "--confirm",
        source_db.dbname,
    )
    # Then it is back, and the foreign key pointing at it exists again
    assert out is not None and out["failed_checks"] == [] and code == 0, out
    assert scalar(source_db, "SELECT count(*) FROM customers WHERE name LIKE '%damaged%'") == 0
    assert (
        scalar(
            source_db,
            "SELECT count(*) FROM pg_constraint WHERE conname = "
            "'orders_customer_id_fkey' AND convalidated",
        )
        == 1
    )


def test_selective_restore_of_a_partitioned_table_brings_every_partition(
    awkward_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a backup, then a partitioned table damaged in two of its partitions
    _, result = take_backup(awkward_db, s3_store)
    awkward_db.execute(
        "DELETE FROM public.events WHERE id % 3 = 0; UPDATE public.no_pk SET b = 'kept' WHERE a = 2"
    )
    # When only the partitioned table is named (the manifest lists its partitions, not it)
    code, out = restore(
        s3_store,
        result.manifest.backup_id,
        awkward_db,
        capsys,
        "--table",
        "events",
        "--clean",
        "--confirm",
        awkward_db.dbname,
    )
    # Then every partition is back with its attached indexes, and nothing else was touched
    assert out is not None and out["failed_checks"] == [] and code == 0, out
    assert scalar(awkward_db, "SELECT count(*) FROM public.events") == 800
    assert (
        scalar(
            awkward_db,
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON "
            "c.oid = i.indexrelid WHERE c.relname LIKE 'events%' AND "
            "NOT i.indisvalid",
        )
        == 0
    )
    assert (
        scalar(
            awkward_db,
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.events'::regclass",
        )
        == 3
    )
    assert scalar(awkward_db, "SELECT b FROM public.no_pk WHERE a = 2") == "kept"


def test_unknown_table_is_refused_before_the_target_is_touched(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    source_db.execute(SHOP)
    _, result = take_backup(source_db, s3_store)
    source_db.execute("DELETE FROM notes")
    code, _ = restore(
        s3_store,
        result.manifest.backup_id,
        source_db,
        capsys,
        "--table",
        "no_such_table",
        "--clean",
        "--confirm",
        source_db.dbname,
    )
    assert code == 2
    assert scalar(source_db, "SELECT count(*) FROM notes") == 0


def test_selective_restore_skips_foreign_keys_of_tables_the_target_lacks(
    source_db: SourceDatabase,
    target_db: SourceDatabase,
    s3_store: S3Store,
    capsys: pytest.CaptureFixture[str],
    isolated_tmp: Path,
) -> None:
    # Given a backup where sales.orders references customers, and a target that has only
    # customers (with other rows)
    source_db.execute(SHOP)
    _, result = take_backup(source_db, s3_store)
    target_db.execute(
        "CREATE TABLE customers (id int PRIMARY KEY, name text); "
        "INSERT INTO customers VALUES (999, 'local')"
    )
    # When only customers is restored over it
    code, report = restore(
        s3_store,
        result.manifest.backup_id,
        target_db,
        capsys,
        "--table",
        "customers",
        "--clean",
        "--confirm",
        target_db.dbname,
    )
    # Then the restore succeeds without trying to re-add orders' foreign key
    assert code == 0, report
    assert scalar(target_db, "SELECT count(*) FROM customers") == 100
    assert scalar(target_db, "SELECT to_regclass('sales.orders')::text") is None


def test_a_staging_safety_backup_never_becomes_productions_latest(
    source_db: SourceDatabase,
    pg_cluster: LocalCluster,
    s3_store: S3Store,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given production's backup filed as "orders", and a staging database also named "orders"
    # (another instance in real life) holding other rows
    source_db.execute(SHOP)
    store, production = take_backup(source_db, s3_store, name="orders")
    with psycopg.connect(**pg_cluster.connect_kwargs(), autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "orders" WITH (FORCE)')
        conn.execute('CREATE DATABASE "orders"')
    staging = SourceDatabase(pg_cluster, "orders")
    try:
        staging.execute("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('staging')")
        # When production's backup is restored over staging (safety backup first)
        code, out = restore(
            s3_store,
            production.manifest.backup_id,
            staging,
            capsys,
            "--database-name",
            "orders",
            "--clean",
            "--confirm",
            "orders",
        )
        assert code == 0 and out is not None and out["safety_backup_id"]
        # Then production's latest is still production's backup, and list shows the safety
        # backup only among the safety backups
        assert store.find("latest", "orders").backup_id == production.manifest.backup_id
        assert [b.backup_id for b in store.list_backups("orders")] == [
            production.manifest.backup_id
        ]
        assert main(["list", "--store", s3_store.url, "--safety", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert [r["backup_id"] for r in rows] == [out["safety_backup_id"]]
    finally:
        with psycopg.connect(**pg_cluster.connect_kwargs(), autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "orders" WITH (FORCE)')
