"""Local verification restores as RDS does: as a master role that is not a superuser
(CREATEDB, CREATEROLE, member of rds_superuser). What only a superuser can create fails there,
naming the object, as it would on RDS; `--restore-as superuser` restores it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backproof.cli import main

from ..conftest import S3Store, SourceDatabase, take_backup
from .conftest import assert_torn_down

# A base type over internal-language functions: only a superuser can create either.
SUPERUSER_ONLY = """
CREATE TYPE public.int4alias;
CREATE FUNCTION public.int4alias_in(cstring) RETURNS public.int4alias
    LANGUAGE internal IMMUTABLE STRICT AS 'int4in';
CREATE FUNCTION public.int4alias_out(public.int4alias) RETURNS cstring
    LANGUAGE internal IMMUTABLE STRICT AS 'int4out';
CREATE TYPE public.int4alias (
    INPUT = public.int4alias_in, OUTPUT = public.int4alias_out, LIKE = pg_catalog.int4);
CREATE TABLE public.aliased (id int PRIMARY KEY, v public.int4alias);
INSERT INTO public.aliased SELECT i, i::text::public.int4alias FROM generate_series(1, 10) i;
CREATE TABLE public.plain (id int PRIMARY KEY);
INSERT INTO public.plain SELECT generate_series(1, 10);
"""


def verify(
    s3: S3Store, backup_id: str, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any], str]:
    code = main(["verify", backup_id, "--store", s3.url, *extra])
    out = capsys.readouterr().out
    # the newest report beside the backup (run ids sort by time)
    listed = s3.s3.list_objects_v2(Bucket=s3.bucket)["Contents"]
    report_key = max(
        o["Key"] for o in listed if backup_id in o["Key"] and "/verifications/" in o["Key"]
    )
    report = json.loads(s3.s3.get_object(Bucket=s3.bucket, Key=report_key)["Body"].read())
    return code, report, out


def test_awkward_database_verifies_restored_as_rds_master_by_default(
    awkward_db: SourceDatabase,
    s3_store: S3Store,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a backup of the awkward database
    _, result = take_backup(awkward_db, s3_store)
    # When it is verified with no --restore-as
    code, report, out = verify(s3_store, result.manifest.backup_id, capsys)
    # Then it restored as the RDS-style master role and everything matched
    assert code == 0 and report["verdict"] == "verified", report["failed_checks"]
    assert report["instance"]["restore_as"] == "rds-master"
    assert report["instance"]["restore_role"] == "backproof"
    assert "restored as rds-master" in out
    assert all(m["reason"] for m in report["restore_messages"])
    assert_torn_down(isolated_tmp)


def test_superuser_only_objects_fail_as_rds_master_and_restore_as_superuser(
    source_db: SourceDatabase,
    s3_store: S3Store,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a database holding a base type (internal-language I/O functions) and a table of it
    source_db.execute(SUPERUSER_ONLY)
    _, result = take_backup(source_db, s3_store)
    # When it is verified as RDS would restore it
    code, report, out = verify(s3_store, result.manifest.backup_id, capsys)
    # Then the verification fails, naming the objects and why
    assert code == 1 and report["verdict"] == "failed"
    assert report["instance"]["restore_as"] == "rds-master"
    fatal = [m for m in report["restore_messages"] if m["fatal"]]
    named = "\n".join(m["text"] for m in fatal)
    assert "public.int4alias_in(cstring)" in named and "public.int4alias" in named
    assert any("superuser" in m["reason"] for m in fatal), fatal
    failed = {(c["check"], c["subject"]) for c in report["failed_checks"]}
    assert ("restore", "pg_restore") in failed
    # one failed row per message, named by the statement that failed, with its reason
    rows = [c for c in report["checks"] if c["check"] == "restore" and c["verdict"] == "fail"]
    assert any(
        c["subject"].startswith("CREATE FUNCTION public.int4alias_in(cstring)")
        and "superuser" in c["detail"]
        for c in rows
    ), rows
    assert ("table_present", "public.aliased") in failed
    assert ("table_present", "public.plain") not in failed
    assert "FAILED" in out and "restored as rds-master" in out
    # When it is verified as a superuser, it restores and matches
    code, report, _ = verify(
        s3_store, result.manifest.backup_id, capsys, "--restore-as", "superuser"
    )
    assert code == 0 and report["verdict"] == "verified", report["failed_checks"]
    assert report["instance"]["restore_as"] == "superuser"
    assert_torn_down(isolated_tmp)
