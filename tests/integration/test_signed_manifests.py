"""Signed manifests: verification checks the manifest's signature first (`integrity.signature`)
and fails a changed, unsigned or replayed manifest before anything is downloaded or created;
with signing not configured the check is skipped, as before. Evidence is signed too."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from backproof.cli import main
from backproof.jobs.backup import BackupRequest, BackupResult, run_backup
from backproof.jobs.integrity import IntegrityFailure, check_integrity, integrity_checks
from backproof.jobs.restore import RestoreRequest, restore_backup
from backproof.jobs.signatures import envelope_problem
from backproof.pg.target import Target
from backproof.signing import PublicKey, Signing, Statement, open_signing
from backproof.store import BackupStore, open_store

from ..conftest import S3Store, SourceDatabase
from .conftest import assert_torn_down, failed_checks

SHOP = """
CREATE TABLE orders (id serial PRIMARY KEY, total numeric(12,2));
INSERT INTO orders (total) SELECT i * 1.5 FROM generate_series(1, 300) i;
"""


@dataclass
class KeyFiles:
    private: Path
    public: Path


@pytest.fixture
def keys(tmp_path: Path) -> KeyFiles:
    key = ec.generate_private_key(ec.SECP256R1())
    files = KeyFiles(tmp_path / "signing.pem", tmp_path / "signing.pub.pem")
    files.private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return files


@pytest.fixture
def shop(source_db: SourceDatabase) -> SourceDatabase:
    source_db.execute(SHOP)
    return source_db


def backup(db: SourceDatabase, s3: S3Store, signing: Signing | None) -> BackupResult:
    store = open_store(s3.url, kms_key_id=s3.kms_key_id)
    return run_backup(BackupRequest(Target.from_url(db.url), store, "shop", signing=signing))


def verify(
    s3: S3Store, backup_id: str, capsys: pytest.CaptureFixture[str], *flags: str
) -> tuple[int, dict[str, Any], str]:
    """Verify through the command; (exit code, the stored report, its key)."""
    code = main(["verify", backup_id, "--store", s3.url, "--json", *flags])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    key = summary["report_key"]
    report = json.loads(s3.s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
    return code, report, key


def get(s3: S3Store, key: str) -> bytes:
    return bytes(s3.s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read())


def put(s3: S3Store, key: str, body: bytes) -> None:
    s3.s3.put_object(
        Bucket=s3.bucket,
        Key=key,
        Body=body,
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=s3.kms_key_id,
    )


def signature_failure(report: dict[str, Any]) -> dict[str, Any]:
    (check,) = [c for c in report["checks"] if c["check"] == "integrity.signature"]
    assert check["verdict"] == "fail"
    return check


def test_a_manifest_changed_after_signing_fails_its_signature(
    shop: SourceDatabase,
    s3_store: S3Store,
    keys: KeyFiles,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a signed backup whose manifest then had one byte changed (the signature kept)
    result = backup(shop, s3_store, open_signing(signing_key=keys.private))
    data = get(s3_store, result.manifest_key)
    assert data.count(b'"rows": 300,') == 1
    put(s3_store, result.manifest_key, data.replace(b'"rows": 300,', b'"rows": 301,'))
    # When it is verified with signing configured
    code, report, _ = verify(
        s3_store, result.manifest.backup_id, capsys, "--signing-key", str(keys.private)
    )
    # Then it fails on the signature, naming the hash, before anything was created
    assert code == 1 and report["verdict"] == "failed"
    assert failed_checks(report) == {"integrity.signature"}
    assert "sha256" in signature_failure(report)["detail"]
    assert report["instance"] == {} and "restore_seconds" not in report["timings"]
    assert_torn_down(isolated_tmp)


def test_an_unsigned_manifest_fails_when_signing_is_configured(
    shop: SourceDatabase,
    s3_store: S3Store,
    keys: KeyFiles,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a backup taken without signing
    result = backup(shop, s3_store, None)
    # When it is verified by someone holding only the public key
    code, report, _ = verify(
        s3_store, result.manifest.backup_id, capsys, "--verify-key", str(keys.public)
    )
    # Then it fails: an unsigned manifest cannot be told apart from a forged one
    assert code == 1 and failed_checks(report) == {"integrity.signature"}
    assert signature_failure(report)["found"] == "unsigned"
    assert report["instance"] == {}
    assert_torn_down(isolated_tmp)


def test_a_manifest_and_archive_replayed_under_another_backup_id_fail(
    shop: SourceDatabase,
    s3_store: S3Store,
    keys: KeyFiles,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given two signed backups A and B of the same database
    signing = open_signing(signing_key=keys.private)
    a = backup(shop, s3_store, signing)
    b = backup(shop, s3_store, signing)
    store = open_store(s3_store.url)
    prefix_a = store.backup_prefix("shop", a.manifest.backup_id)
    prefix_b = store.backup_prefix("shop", b.manifest.backup_id)
    # When A's validly signed manifest, its signature, archive and roles are copied over B's
    for name in ("manifest.json", "manifest.json.sig", "archive.dump.zst", "roles.json"):
        put(s3_store, prefix_b + name, get(s3_store, prefix_a + name))
    code, report, _ = verify(
        s3_store, b.manifest.backup_id, capsys, "--signing-key", str(keys.private)
    )
    # Then B fails on the signature, which names backup A and A's key
    assert code == 1 and failed_checks(report) == {"integrity.signature"}
    detail = signature_failure(report)["detail"]
    assert a.manifest.backup_id in detail and "backup_id" in detail and "key" in detail
    assert report["instance"] == {}
    # and A itself still verifies its signature
    _, results = integrity_checks(store, store.find(a.manifest.backup_id), signing=signing)
    assert not [r for r in results if r.failed]
    assert_torn_down(isolated_tmp)


def test_without_signing_configured_the_signature_is_skipped_as_before(
    shop: SourceDatabase, s3_store: S3Store
) -> None:
    # Given an unsigned backup, and one whose signed manifest was changed
    unsigned = backup(shop, s3_store, None)
    store = open_store(s3_store.url)
    # When integrity is checked with no signing configured
    _, results = integrity_checks(store, store.find(unsigned.manifest.backup_id))
    # Then the signature is reported skipped, first, and nothing fails
    assert (results[0].check, results[0].verdict) == ("integrity.signature", "skip")
    assert "not configured" in results[0].detail
    assert not [r for r in results if r.failed]


def test_the_command_signs_manifest_and_evidence_with_a_local_key_file(
    shop: SourceDatabase,
    s3_store: S3Store,
    keys: KeyFiles,
    isolated_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a backup taken by the command with a private key file (from the environment)
    code = main(
        [
            "backup",
            "--source-url",
            shop.url,
            "--store",
            s3_store.url,
            "--kms-key-id",
            s3_store.kms_key_id,
            "--database-name",
            "shop",
            "--signing-key",
            str(keys.private),
            "--json",
        ]
    )
    assert code == 0
    backup_id = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["backup_id"]
    # When it is verified with the same key file
    code, report, report_key = verify(
        s3_store, backup_id, capsys, "--signing-key", str(keys.private)
    )
    # Then it is verified, its signature checked first of the integrity checks
    assert code == 0 and report["verdict"] == "verified"
    first = next(c for c in report["checks"] if c["check"].startswith("integrity."))
    assert (first["check"], first["verdict"]) == ("integrity.signature", "pass")
    # and the evidence's signature, beside it, verifies with the public key file alone
    store = open_store(s3_store.url)
    stored = store.find(backup_id)
    expected = Statement.of(
        "verification", backup_id, "shop", report_key, get(s3_store, report_key)
    )
    problem, envelope = envelope_problem(
        PublicKey.from_file(keys.public),
        expected,
        get(s3_store, report_key + ".sig"),
        where="report signature",
    )
    assert problem == "" and envelope is not None
    # and a signature is never taken for a run of its own
    assert stored.verification_keys == [report_key]
    assert len(store.load_verifications(stored)) == 1
    assert_torn_down(isolated_tmp)


def test_a_kms_signed_manifest_passes_integrity_checked_with_the_public_key(
    shop: SourceDatabase, s3_store: S3Store
) -> None:
    # Given a backup signed with a KMS asymmetric key (moto)
    key_id = s3_store.kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")[
        "KeyMetadata"
    ]["Arn"]
    result = backup(shop, s3_store, open_signing(kms_key_id=key_id))
    store: BackupStore = open_store(s3_store.url)
    # When integrity is checked by one who may only read the public key
    checker = open_signing(kms_key_id=key_id, sign_with_kms=False)
    _, results = check_integrity(store, store.find(result.manifest.backup_id), signing=checker)
    # Then the signature is the first check and it passes
    assert (results[0].check, results[0].verdict) == ("integrity.signature", "pass")
    assert results[0].found["key_id"] == key_id


@pytest.fixture
def empty_target(source_db: SourceDatabase) -> Iterator[SourceDatabase]:
    name = f"tgt_{secrets.token_hex(4)}"
    source_db.cluster.create_database(name)
    yield SourceDatabase(source_db.cluster, name)
    with psycopg.connect(**source_db.cluster.connect_kwargs(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_restore_refuses_a_changed_signed_manifest_before_touching_the_target(
    shop: SourceDatabase, s3_store: S3Store, keys: KeyFiles, empty_target: SourceDatabase
) -> None:
    # Given a signed backup whose manifest was changed afterwards
    signing = open_signing(signing_key=keys.private)
    result = backup(shop, s3_store, signing)
    data = get(s3_store, result.manifest_key)
    put(s3_store, result.manifest_key, data.replace(b'"rows": 300,', b'"rows": 301,'))
    # When it is restored with signing configured
    request = RestoreRequest(result.manifest.backup_id, empty_target.url, signing=signing)
    with pytest.raises(IntegrityFailure, match=r"integrity\.signature") as caught:
        restore_backup(open_store(s3_store.url), request)
    # Then nothing was restored
    assert "the target was not touched" in str(caught.value)
    with empty_target.connect() as conn:
        row = conn.execute("SELECT to_regclass('public.orders') IS NULL").fetchone()
    assert row is not None and row[0] is True
