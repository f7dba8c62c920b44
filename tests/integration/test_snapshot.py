"""The manifest describes exactly the exported snapshot: later writes do not change it, and any
single-row change inside it changes that table's fingerprint."""

from __future__ import annotations

import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
import zstandard

from backproof.jobs.backup import BackupRequest, run_backup
from backproof.pg.inventory import take_inventory
from backproof.pg.programs import find_program
from backproof.pg.target import Target
from backproof.store import open_store

from ..conftest import S3Store, SourceDatabase


def inventory_of(db: SourceDatabase) -> Any:
    with db.connect() as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return take_inventory(conn)


def fingerprints(db: SourceDatabase) -> dict[str, tuple[int, str]]:
    return {t.qualified: (t.rows, t.fingerprint) for t in inventory_of(db).tables}


EDITS = [
    (
        "update one numeric digit",
        'UPDATE "Sales"."Order Items" SET "unit price" = "unit price" + 0.000000000001 WHERE "ID" = 250',
    ),
    ("NULL to empty string", "UPDATE public.no_pk SET b = '' WHERE a = 2"),
    (
        "delete one duplicate",
        "DELETE FROM public.no_pk WHERE ctid = (SELECT min(ctid) FROM public.no_pk WHERE a = 1)",
    ),
    ("insert a duplicate", "INSERT INTO public.no_pk VALUES (1, 'x')"),
    ("float NaN to Infinity", "UPDATE public.values_zoo SET f8 = 'Infinity' WHERE f8 = 'NaN'"),
    (
        "one microsecond",
        "UPDATE public.values_zoo SET ts = ts + interval '1 microsecond' WHERE id = 1",
    ),
    ("bytea byte", r"UPDATE public.values_zoo SET raw = '\x00ff11' WHERE id = 1"),
    (
        "jsonb nested",
        """UPDATE public.values_zoo SET doc = '{"a": [1, 2, {"b": 0}], "z": "ü"}' WHERE id = 1""",
    ),
    ("array element", "UPDATE public.values_zoo SET tags = ARRAY['a', NULL, 'd'] WHERE id = 1"),
    (
        "unicode text",
        """UPDATE "données"."clé_ünïcode" SET "名前" = '京都' WHERE "名前" = '東京'""",
    ),
    ("partition row", "UPDATE public.events SET kind = 'odd!' WHERE id = 7"),
    (
        "swap two values between rows",
        "UPDATE archive.invoices SET amount = CASE id WHEN 1 THEN (SELECT amount FROM archive.invoices WHERE id = 2) ELSE (SELECT amount FROM archive.invoices WHERE id = 1) END WHERE id IN (1, 2)",
    ),
]


@pytest.mark.parametrize(("label", "statement"), EDITS, ids=[e[0] for e in EDITS])
def test_any_single_row_change_changes_that_tables_fingerprint(
    awkward_db: SourceDatabase, label: str, statement: str
) -> None:
    # Given the fingerprints of the awkward database
    before = fingerprints(awkward_db)
    # When one row is changed
    awkward_db.execute(statement)
    after = fingerprints(awkward_db)
    # Then exactly the touched table's fingerprint differs
    changed = {name for name in before if before[name] != after.get(name)}
    assert len(changed) == 1, (label, changed)


def test_fingerprint_ignores_physical_order_and_session_settings(
    awkward_db: SourceDatabase,
) -> None:
    before = fingerprints(awkward_db)
    awkward_db.execute("CLUSTER archive.invoices USING invoices_pkey")
    awkward_db.execute("VACUUM FULL public.values_zoo")
    with awkward_db.connect() as conn:
        conn.execute("SET TimeZone = 'Asia/Kathmandu'")
        conn.execute("SET DateStyle = 'German, DMY'")
        conn.execute("SET extra_float_digits = -15")
        conn.execute("SET bytea_output = 'escape'")
        conn.execute("SET IntervalStyle = 'sql_standard'")
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        tables = take_inventory(conn).tables
    assert {t.qualified: (t.rows, t.fingerprint) for t in tables} == before


def test_writes_after_the_snapshot_do_not_change_the_manifest(
    awkward_db: SourceDatabase, s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the inventory before any concurrent write
    expected = fingerprints(awkward_db)
    store = open_store(s3_store.url)
    writes_done = threading.Event()

    def write_during_dump(event: str, data: dict[str, Any]) -> None:
        # When, right after the snapshot is exported, other sessions insert, update and delete
        if event == "snapshot":
            with awkward_db.connect(autocommit=True) as conn:
                conn.execute("INSERT INTO public.no_pk VALUES (99, 'late')")
                conn.execute("UPDATE archive.invoices SET amount = 0 WHERE id = 5")
                conn.execute("DELETE FROM public.events WHERE id = 3")
                conn.execute("CREATE TABLE public.late_table (id int)")
            writes_done.set()

    result = run_backup(
        BackupRequest(Target.from_url(awkward_db.url), store, "awk"), progress=write_during_dump
    )
    assert writes_done.is_set()
    # Then the manifest still describes the database as it was at the snapshot
    got = {t.qualified: (t.rows, t.fingerprint) for t in result.manifest.inventory.tables}
    assert got == expected
    assert fingerprints(awkward_db) != expected  # and the writes really happened


def test_archive_holds_the_snapshot_not_later_writes(
    source_db: SourceDatabase, s3_store: S3Store, pg_cluster: Any
) -> None:

    source_db.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g")
    store = open_store(s3_store.url)

    def late_insert(event: str, data: dict[str, Any]) -> None:
        if event == "snapshot":
            source_db.execute("INSERT INTO t SELECT g FROM generate_series(101, 150) g")

    result = run_backup(
        BackupRequest(Target.from_url(source_db.url), store, "t"), progress=late_insert
    )
    assert result.manifest.inventory.table("public", "t").rows == 100  # type: ignore[union-attr]
    body = s3_store.s3.get_object(Bucket=s3_store.bucket, Key=result.manifest.archive.key)[
        "Body"
    ].read()
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "a.dump"
        archive.write_bytes(zstandard.ZstdDecompressor().decompressobj().decompress(body))
        pg_restore = find_program("pg_restore", min_major=0, purpose="test")
        sql = subprocess.run(
            [str(pg_restore.path), "--data-only", "-f", "-", str(archive)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    copied = sql.split("COPY public.t (id) FROM stdin;\n", 1)[1].split("\\.", 1)[0].split()
    assert len(copied) == 100


def test_fingerprint_same_on_another_connection_with_other_defaults(
    awkward_db: SourceDatabase,
) -> None:
    base = fingerprints(awkward_db)
    with psycopg.connect(
        **awkward_db.cluster.connect_kwargs(awkward_db.dbname),
        options="-c TimeZone=America/St_Johns -c DateStyle=SQL,DMY",
    ) as conn:
        conn.execute("BEGIN")
        assert {t.qualified: (t.rows, t.fingerprint) for t in take_inventory(conn).tables} == base
