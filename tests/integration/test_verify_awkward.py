"""No false alarms: awkward but healthy databases verify with exit 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backproof.cli import main

from ..conftest import S3Store, SourceDatabase, take_backup
from .conftest import assert_torn_down

EXTRAS = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
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


def test_awkward_database_verifies_without_false_alarms(
    awkward_db: SourceDatabase,
    s3_store: S3Store,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the awkward-data database plus extensions, unicode partitions and a NOT VALID check
    awkward_db.execute(EXTRAS)
    for compression in ("zstd", "gzip", "none"):
        _, result = take_backup(awkward_db, s3_store, compression=compression)
        # When it is verified by restore
        code = main(
            [
                "verify",
                result.manifest.backup_id,
                "--store",
                s3_store.url,
                "--json",
                "--assert",
                "SELECT count(*) = 5 FROM public.no_pk",
                "--fresh",
                "archive.invoices.updated_at=1000w",
            ]
        )
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        report = json.loads(
            s3_store.s3.get_object(Bucket=s3_store.bucket, Key=summary["report_key"])["Body"].read()
        )
        # Then everything matches
        assert summary["failed_checks"] == [], summary
        assert code == 0 and report["verdict"] == "verified"
        checked = {c["subject"] for c in report["checks"] if c["check"] == "fingerprint"}
        assert {
            "Sales.Order Items",
            "données.clé_ünïcode",
            "public.Ünïcode Partitioned_eu",
            "public.events_other",
            "public.empty_table",
        } <= checked
        assert any(
            c["check"] == "large_objects" and c["verdict"] == "pass" for c in report["checks"]
        )
        assert report["timings"]["restore_seconds"] > 0
    assert_torn_down(isolated_tmp)
