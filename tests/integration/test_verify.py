"""`backproof verify`: good backups verify, with evidence written beside them."""

from __future__ import annotations

import json

from backproof.verify import VerifyOptions, verify_backup

from ..conftest import S3Store, SourceDatabase
from .verify_fixtures import assert_torn_down, isolated_tmp, take_backup

__all__ = ["isolated_tmp"]

SHOP = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,
                     created_at timestamptz NOT NULL DEFAULT now(), total numeric(12,2));
INSERT INTO customers (name) SELECT 'c' || i FROM generate_series(1, 100) i;
INSERT INTO orders (customer_id, total) SELECT 1 + i % 100, i * 1.5 FROM generate_series(1, 1000) i;
"""


def test_good_backup_verifies_and_report_is_written(
    source_db: SourceDatabase, s3_store: S3Store, isolated_tmp
) -> None:
    source_db.execute(SHOP)
    store, result = take_backup(source_db, s3_store)
    report = verify_backup(store, result.manifest.backup_id)
    print(json.dumps(report.to_dict(), indent=1, default=str)[:3000])
    assert report.passed, report.failures
    stored = json.loads(s3_store.s3.get_object(Bucket=s3_store.bucket, Key=report.report_key)["Body"].read())
    assert stored["verdict"] == "verified"
    assert_torn_down(isolated_tmp)
