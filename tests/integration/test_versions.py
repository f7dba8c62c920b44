"""The version matrix the deployed container faces: sources on PostgreSQL 14 to 18, dumped
with pg_dump 18 (the container's tools), restored by pg_restore 18 into an instance of the
source's own major (as the temporary RDS instance is), every fingerprint and check equal.

The majors other than the system's come from `tests/support/pg_majors.py` (`make pg-majors`,
which `make test` runs and whose bin directories it exports as BACKPROOF_PG_BIN_DIRS). A major
whose binaries are missing is skipped with the command that provides it.

Restore seconds per major are written to `.cache/versions/restore_seconds.json`.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

import pytest

from backproof.jobs.verify import VerifyOptions, verify_backup
from backproof.pg.cluster import LocalCluster
from backproof.pg.programs import installed

from ..conftest import DATA, S3Store, SourceDatabase, take_backup
from .conftest import assert_torn_down

MAJORS = (14, 15, 16, 17, 18)
DUMP_MAJOR = 18
RESULTS = Path(__file__).resolve().parents[2] / ".cache" / "versions" / "restore_seconds.json"
PROVIDE = "run `make pg-majors` (python3 tests/support/pg_majors.py) and export its bin dirs"

# Beyond tests/data/awkward.sql: trusted extensions, a unicode-named partitioned table, a
# NOT VALID constraint, NaN-only rows. Every statement runs on PostgreSQL 14.
EXTRAS = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TABLE public."Ünïcode Partitioned" ("Région" text NOT NULL, n int)
    PARTITION BY LIST ("Région");
CREATE TABLE public."Ünïcode Partitioned_eu" PARTITION OF public."Ünïcode Partitioned"
    FOR VALUES IN ('eu');
CREATE TABLE public."Ünïcode Partitioned_rest" PARTITION OF public."Ünïcode Partitioned" DEFAULT;
INSERT INTO public."Ünïcode Partitioned" SELECT CASE WHEN i % 3 = 0 THEN 'eu' ELSE 'üs' END, i
FROM generate_series(1, 300) i;
CREATE INDEX trgm_idx ON archive.customers USING gin (name gin_trgm_ops);
ALTER TABLE archive.invoices ADD CONSTRAINT amount_positive CHECK (amount > 0) NOT VALID;
CREATE TABLE public.nan_only (x float8, y numeric);
INSERT INTO public.nan_only VALUES ('NaN', 'NaN'), ('NaN', 'NaN');
"""


def _has_major(program: str, major: int) -> bool:
    return any(p.major == major for p in installed(program))


def skip_unless_provisioned(reason: str) -> None:
    """Skip, or fail where `make test` promised the binaries (BACKPROOF_REQUIRE_PROVISIONED)."""
    if os.environ.get("BACKPROOF_REQUIRE_PROVISIONED"):
        pytest.fail(reason)
    pytest.skip(reason)


def _error_line(text: str) -> str:
    return next((line for line in text.splitlines() if "ERROR:" in line), text.splitlines()[0])


def _record(major: int, row: dict[str, object]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    try:
        table = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        table = {}
    table[str(major)] = row
    RESULTS.write_text(json.dumps(dict(sorted(table.items())), indent=2) + "\n")


@pytest.mark.parametrize("major", MAJORS, ids=[f"pg{m}" for m in MAJORS])
def test_source_major_dumped_by_18_restores_into_its_own_major(
    major: int,
    s3_store: S3Store,
    isolated_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not _has_major("pg_dump", DUMP_MAJOR):
        skip_unless_provisioned(f"pg_dump {DUMP_MAJOR} is not installed: {PROVIDE}")
    if not (_has_major("postgres", major) and _has_major("initdb", major)):
        skip_unless_provisioned(f"PostgreSQL {major} server binaries are not installed: {PROVIDE}")
    # Given a PostgreSQL `major` source holding the awkward data set
    with LocalCluster(major=major, name=f"backproof-src{major}") as cluster:
        assert cluster.server is not None and cluster.server.major == major
        dbname = f"src_{secrets.token_hex(4)}"
        cluster.create_database(dbname)
        monkeypatch.setenv("PGPASSWORD", cluster.password)
        source = SourceDatabase(cluster, dbname)
        source.run_sql_file(DATA / "awkward.sql")
        source.execute(EXTRAS)
        # When it is backed up (pg_dump 18) and verified by restore into its own major
        store, result = take_backup(source, s3_store)
        started = time.monotonic()
        report = verify_backup(store, result.manifest.backup_id, options=VerifyOptions())
        wall = time.monotonic() - started
    # Then the dump tool is 18, the restore server is the source's major, and all is equal
    assert result.manifest.server_major == major
    assert int(result.manifest.tools["pg_dump"]["version"].split(".")[0]) == DUMP_MAJOR
    assert int(report.tools["pg_restore"]["version"].split(".")[0]) >= DUMP_MAJOR
    assert report.instance["server_major"] == major, report.instance
    assert report.instance["restore_as"] == "rds-master"
    failed = [(c.check, c.subject, c.found, c.detail) for c in report.failures]
    assert report.passed and failed == [], (failed, report.error)
    fingerprints = [c for c in report.checks if c.check == "fingerprint"]
    assert fingerprints and all(c.verdict == "pass" for c in fingerprints)
    # What pg_restore 18 prints into an older server: the setting it lacks, and (up to 14,
    # restoring as the master user) the public schema its bootstrap superuser owns.
    expected = ("transaction_timeout", "public schema", "summary of the errors")
    unexplained = [
        m.text
        for m in report.restore_messages
        if m.fatal or not any(word in m.reason for word in expected)
    ]
    assert unexplained == []
    _record(
        major,
        {
            "source": result.manifest.server["version"],
            "pg_dump": result.manifest.tools["pg_dump"]["version"],
            "pg_restore": report.tools["pg_restore"]["version"],
            "restored_into": report.instance.get("server_version"),
            "restore_as": report.instance.get("restore_as"),
            "result": report.verdict,
            "restore_seconds": report.timings.get("restore_seconds"),
            "verify_wall_seconds": round(wall, 2),
            "harmless_messages": sorted(
                {f"{_error_line(m.text)} -> {m.reason}" for m in report.restore_messages}
            ),
        },
    )
    print(f"PG{major}: restore {report.timings.get('restore_seconds')} s, {report.verdict}")
    assert_torn_down(isolated_tmp)
