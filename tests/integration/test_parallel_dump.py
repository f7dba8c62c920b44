"""Backups dumped by several workers: the parts, their merge, and what a verification or a
restore makes of them (jobs/dump_workers.py, pg/merge.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from psycopg import sql

from backproof.errors import BackproofError
from backproof.jobs.verify import VerifyOptions, verify_backup
from backproof.model.checks import FAIL
from backproof.store import BackupStore

from ..conftest import S3Store, SourceDatabase, take_backup
from .test_restore import SHOP, restore, scalar


def _fingerprints(store: BackupStore, backup_id: str) -> dict[str, tuple[int, str]]:
    manifest = store.load_manifest(store.find(backup_id))
    return {t.qualified: (t.rows, t.fingerprint) for t in manifest.inventory.tables}


def test_a_split_backup_verifies_with_every_table_matching_the_source(
    awkward_db: SourceDatabase, s3_store: S3Store
) -> None:
    # Given the awkward database (quoted, unicode and mixed-case table names, large objects,
    # sequences, foreign keys) dumped by three workers
    store, result = take_backup(awkward_db, s3_store, jobs=3)
    archive = result.manifest.archive
    # Then the main archive has two data-only parts beside it, each holding some tables' data
    assert len(archive.parts) == 2 and result.manifest.format_version == 3
    assert all(p.tables and p.key.startswith(archive.key.rsplit("/", 1)[0]) for p in archive.parts)
    parted = {tuple(t) for p in archive.parts for t in p.tables}
    assert ("Sales", "Order Items") in parted or ("données", "clé_ünïcode") in parted
    # When it is verified by a real restore
    report = verify_backup(store, result.manifest.backup_id, options=VerifyOptions())
    # Then every table matches its fingerprint and the parts were checked and merged
    assert report.verdict == "verified", [r for r in report.checks if r.verdict == FAIL]
    subjects = {r.subject for r in report.checks if r.check == "integrity.sha256"}
    assert subjects == {"archive", "archive part 1", "archive part 2"}


def test_fingerprints_shared_between_connections_equal_one_connections(
    awkward_db: SourceDatabase, s3_store: S3Store
) -> None:
    # Given the same database backed up by one worker and by three (whose inventory is taken
    # by three connections importing the snapshot)
    store, one = take_backup(awkward_db, s3_store, jobs=1)
    _, three = take_backup(awkward_db, s3_store, jobs=3)
    # Then both record the same rows and fingerprints for every table, and one archive
    assert not one.manifest.archive.parts and one.manifest.format_version == 2
    assert _fingerprints(store, one.manifest.backup_id) == _fingerprints(
        store, three.manifest.backup_id
    )


def test_a_part_altered_in_the_store_fails_integrity_naming_the_part(
    awkward_db: SourceDatabase, s3_store: S3Store
) -> None:
    # Given a split backup whose second part was overwritten in the store
    store, result = take_backup(awkward_db, s3_store, jobs=3)
    part = result.manifest.archive.parts[1]
    bucket, key = s3_store.bucket, part.key
    body = s3_store.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3_store.s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body[:-1] + bytes([body[-1] ^ 1]),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=s3_store.kms_key_id,
    )
    # When it is verified
    report = verify_backup(store, result.manifest.backup_id, options=VerifyOptions())
    # Then the backup itself is defective, and the report names the part
    assert report.verdict == "failed"
    failed = {(r.check, r.subject) for r in report.checks if r.verdict == FAIL}
    assert ("integrity.sha256", "archive part 2") in failed


def test_a_worker_that_fails_leaves_no_backup_and_no_upload(
    awkward_db: SourceDatabase, s3_store: S3Store
) -> None:
    # Given a backup role that may read every table but one, which is large enough to be
    # given to a worker of its own: that worker's pg_dump fails while the others succeed
    role = f"reader_{awkward_db.dbname}"
    awkward_db.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(awkward_db.cluster.password)
        )
    )
    for statement in (
        'GRANT USAGE ON SCHEMA public, "Sales", "données", archive TO {}',
        'GRANT SELECT ON ALL TABLES IN SCHEMA public, "Sales", "données", archive TO {}',
        'GRANT SELECT ON ALL SEQUENCES IN SCHEMA public, "Sales", "données", archive TO {}',
        "GRANT SELECT ON pg_largeobject_metadata TO {}",
        'REVOKE SELECT ON "Sales"."Order Items" FROM {}',
    ):
        awkward_db.execute(sql.SQL(statement).format(sql.Identifier(role)))
    reader = _AsRole(awkward_db, role)
    # When it is backed up by three workers
    with pytest.raises(BackproofError, match="Order Items"):
        take_backup(reader, s3_store, jobs=3)
    # Then nothing is left: no manifest, no part another worker completed, no open upload
    listed = s3_store.s3.list_objects_v2(Bucket=s3_store.bucket).get("Contents", [])
    uploads = s3_store.s3.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", [])
    assert [o["Key"] for o in listed] == []
    assert uploads == []


@dataclass
class _AsRole:
    """The database, seen through another role (same password, in PGPASSWORD)."""

    db: SourceDatabase
    role: str

    @property
    def url(self) -> str:
        return self.db.url.replace(f"://{self.db.cluster.superuser}@", f"://{self.role}@", 1)


def test_a_split_backup_restores_over_a_damaged_database_and_table_by_table(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a shop backed up by three workers, then damaged
    source_db.execute(SHOP)
    _, result = take_backup(source_db, s3_store, jobs=3)
    assert result.manifest.archive.parts
    backup_id = result.manifest.backup_id
    source_db.execute("DELETE FROM sales.orders WHERE id > 10; UPDATE notes SET body = 'lost'")
    # When one table is restored from it
    code, out = restore(
        s3_store,
        backup_id,
        source_db,
        capsys,
        "--table",
        "sales.orders",
        "--clean",
        "--confirm",
        source_db.dbname,
    )
    # Then that table is whole again, with its index, and the other is untouched
    assert out is not None and out["failed_checks"] == [] and code == 0, out
    assert scalar(source_db, "SELECT count(*) FROM sales.orders") == 2000
    assert scalar(source_db, "SELECT count(*) FROM notes WHERE body = 'lost'") == 10
    assert (
        scalar(source_db, "SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_customer_idx'")
        == 1
    )
    # When the whole database is restored over itself
    code, out = restore(
        s3_store, backup_id, source_db, capsys, "--clean", "--confirm", source_db.dbname
    )
    # Then every table matches the backup again
    assert out is not None and out["failed_checks"] == [] and code == 0, out
    assert scalar(source_db, "SELECT count(*) FROM notes WHERE body = 'lost'") == 0
