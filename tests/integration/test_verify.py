"""`backproof verify`: good backups verify with evidence beside them; bad input exits 2 having
created nothing; the steps the AWS workflow calls work on their own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backproof.cli import main
from backproof.jobs.integrity import check_integrity
from backproof.jobs.verify import VerifyOptions, verify_backup, verify_on_target
from backproof.pg.cluster import LocalCluster
from backproof.store import open_store

from ..conftest import S3Store, SourceDatabase, take_backup
from .conftest import assert_torn_down

SHOP = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,
                     created_at timestamptz NOT NULL DEFAULT now(), total numeric(12,2));
INSERT INTO customers (name) SELECT 'c' || i FROM generate_series(1, 100) i;
INSERT INTO orders (customer_id, total) SELECT 1 + i % 100, i * 1.5 FROM generate_series(1, 1000) i;
"""


def stored_json(s3: S3Store, key: str) -> dict[str, Any]:
    return json.loads(s3.s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read())


def test_good_backup_verifies_and_list_shows_it(
    source_db: SourceDatabase,
    s3_store: S3Store,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a backup of a small shop
    source_db.execute(SHOP)
    _, result = take_backup(source_db, s3_store)
    # When it is verified through the command
    code = main(
        [
            "verify",
            "latest",
            "--store",
            s3_store.url,
            "--database-name",
            "shop",
            "--fresh",
            "orders.created_at=1h",
            "--assert",
            "SELECT true",
        ]
    )
    out = capsys.readouterr().out
    # Then it passes, says so readably, and the evidence is beside the backup
    assert code == 0, out
    assert "VERIFIED" in out and "exact row counts" in out and "/verifications/" in out
    (run_key,) = open_store(s3_store.url).find(result.manifest.backup_id).verification_keys
    report = stored_json(s3_store, run_key)
    assert report["verdict"] == "verified" and report["instance"]["kind"] == "local"
    assert report["instance"]["server_major"] >= result.manifest.server_major
    assert {
        "integrity_seconds",
        "restore_seconds",
        "checks_seconds",
        "teardown_seconds",
        "total_seconds",
    } <= set(report["timings"])
    assert report["tools"]["pg_restore"]["version"]
    assert main(["list", "--store", s3_store.url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rows[0]["verification"] == "verified" and rows[0]["restore_seconds"] > 0
    assert_torn_down(isolated_tmp)


def test_failed_verification_is_listed_as_failed(
    source_db: SourceDatabase,
    s3_store: S3Store,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source_db.execute(SHOP)
    _, result = take_backup(source_db, s3_store)
    assert (
        main(
            [
                "verify",
                result.manifest.backup_id,
                "--store",
                s3_store.url,
                "--assert",
                "SELECT false",
            ]
        )
        == 1
    )
    assert "FAILED" in capsys.readouterr().out
    assert main(["list", "--store", s3_store.url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rows[0]["verification"] == "failed"
    assert_torn_down(isolated_tmp)


@pytest.mark.parametrize("backup_id", ["20991231T000000Z-abcdef", "latest", "not-an-id"])
def test_unknown_backup_is_bad_input_and_creates_nothing(
    s3_store: S3Store,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
    backup_id: str,
) -> None:
    assert main(["verify", backup_id, "--store", s3_store.url]) == 2
    assert "backproof:" in capsys.readouterr().err
    assert_torn_down(isolated_tmp)


def test_unreadable_store_is_bad_input(s3_store: S3Store, isolated_tmp: Path) -> None:
    assert main(["verify", "latest", "--store", "s3://no-such-bucket-here/x"]) == 2
    assert main(["verify", "latest", "--store", "/tmp/not-s3"]) == 2
    assert_torn_down(isolated_tmp)


def test_no_installed_server_for_the_backup_major_exits_2_without_a_report(
    source_db: SourceDatabase,
    s3_store: S3Store,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a backup whose manifest says it came from a PostgreSQL 99 server
    source_db.execute(SHOP)
    _, result = take_backup(source_db, s3_store)
    manifest = stored_json(s3_store, result.manifest_key)
    manifest["server"]["major"] = 99
    s3_store.s3.put_object(
        Bucket=s3_store.bucket,
        Key=result.manifest_key,
        Body=json.dumps(manifest).encode(),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=s3_store.kms_key_id,
    )
    # When verified locally: no server that new is installed
    code = main(["verify", result.manifest.backup_id, "--store", s3_store.url])
    # Then exit 2 naming the versions, nothing created, nothing recorded
    assert code == 2
    assert "99" in capsys.readouterr().err
    objects = s3_store.s3.list_objects_v2(Bucket=s3_store.bucket)["Contents"]
    assert not any("/verifications/" in o["Key"] for o in objects)
    assert_torn_down(isolated_tmp)


def test_workflow_steps_integrity_then_restore_on_a_provided_server(
    source_db: SourceDatabase,
    s3_store: S3Store,
    isolated_tmp: Path,
) -> None:
    # Given a backup and a server provisioned by someone else (the workflow's RDS instance)
    source_db.execute(SHOP)
    store, result = take_backup(source_db, s3_store)
    stored = store.find(result.manifest.backup_id)
    # When the integrity step runs alone, then the restore task runs against that server
    manifest, _ = check_integrity(store, stored)
    assert manifest.backup_id == result.manifest.backup_id
    with LocalCluster(name="backproof-external") as server:
        admin = server.target("postgres")
        report = verify_on_target(
            store, stored, admin, instance_info={"kind": "rds", "identifier": "test"}
        )
    # Then the report is the same kind of evidence, written beside the backup
    assert report.passed, report.failures
    assert report.report_key and report.report_key.startswith(stored.prefix + "verifications/")
    assert stored_json(s3_store, report.report_key)["instance"]["identifier"] == "test"
    assert_torn_down(isolated_tmp)


def test_verify_backup_without_writing(
    source_db: SourceDatabase, s3_store: S3Store, isolated_tmp: Path
) -> None:

    source_db.execute(SHOP)
    store, result = take_backup(source_db, s3_store)
    report = verify_backup(store, result.manifest.backup_id, options=VerifyOptions(write=False))
    assert report.passed and report.report_key is None
    assert not store.find(result.manifest.backup_id).has_verification
    assert_torn_down(isolated_tmp)


def test_verify_into_a_given_server_leaves_the_server_to_its_owner(
    source_db: SourceDatabase,
    s3_store: S3Store,
    isolated_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a backup and a server someone else runs (the workflow's RDS instance, say)
    source_db.execute(SHOP)
    _, result = take_backup(source_db, s3_store)
    with LocalCluster(name="backproof-given") as server:
        monkeypatch.setenv("PGPASSWORD", server.password)
        # When verified into it by URL (password from PGPASSWORD, not the command line)
        code = main(
            [
                "verify",
                result.manifest.backup_id,
                "--store",
                s3_store.url,
                "--json",
                "--target-url",
                f"postgresql://backproof@127.0.0.1:{server.port}/postgres",
            ]
        )
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        # Then it verified, and the server is still up with the restored database on it
        assert code == 0 and summary["verdict"] == "verified" and summary["instance"] == "given"
        assert server.running
        with psycopg.connect(**server.connect_kwargs(source_db.dbname)) as conn:
            assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1000,)


def test_unwritable_evidence_fails_the_verification_but_keeps_the_result(
    source_db: SourceDatabase,
    s3_store: S3Store,
    isolated_tmp: Path,
) -> None:

    # Given a good backup, and a store that can no longer encrypt writes (its key disabled)
    source_db.execute(SHOP)
    _, result = take_backup(source_db, s3_store)
    key = s3_store.kms.create_key()["KeyMetadata"]
    s3_store.kms.disable_key(KeyId=key["KeyId"])
    disabled = key["Arn"]
    store = open_store(s3_store.url, kms_key_id=disabled)
    # When verified
    report = verify_backup(store, result.manifest.backup_id)
    # Then every check passed, yet the verification fails because its evidence is not stored
    assert report.failures == [] and not report.passed
    assert report.error and "evidence could not be written" in report.error
    assert not store.find(result.manifest.backup_id).has_verification
    assert_torn_down(isolated_tmp)
