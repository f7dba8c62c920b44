"""`backproof evidence`: a bundle built from a real, KMS-signed backup and its verification
checks offline (no store, no AWS) and fails once any byte of what it vouches for changes."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws

from backproof.cli import main
from backproof.pg.cluster import LocalCluster

from ..conftest import SourceDatabase, take_backup

SHOP = """
CREATE TABLE orders (id serial PRIMARY KEY, total numeric(12,2));
INSERT INTO orders (total) SELECT i * 1.5 FROM generate_series(1, 200) i;
"""


@dataclass
class Destination:
    """A bucket, its encryption key and the KMS signing key (as a deployment has)."""

    url: str
    kms_key_id: str
    signing_key_arn: str


@dataclass
class Built:
    bundle: bytes
    backup_id: str


@pytest.fixture(scope="module")
def built(pg_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """One real backup, signed with a KMS key (moto), verified by restore with its evidence
    signed by the same key, one report written unsigned, and the bundle built by the command."""
    name = f"src_{secrets.token_hex(4)}"
    pg_cluster.create_database(name)
    out = tmp_path_factory.mktemp("evidence") / "bundle.json"
    with pytest.MonkeyPatch.context() as env, mock_aws():
        env.setenv("PGPASSWORD", pg_cluster.password)
        db = SourceDatabase(pg_cluster, name)
        db.execute(SHOP)
        s3, kms = boto3.client("s3"), boto3.client("kms")
        bucket = f"evidence-{secrets.token_hex(4)}"
        s3.create_bucket(Bucket=bucket)
        where = Destination(
            f"s3://{bucket}/p",
            kms.create_key()["KeyMetadata"]["Arn"],
            kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"],
        )
        store, result = take_backup(db, where)
        backup_id = result.manifest.backup_id
        key = ["--signing-kms-key-id", where.signing_key_arn]
        assert main(["verify", backup_id, "--store", where.url, *key]) == 0
        store.write_verification(store.find(backup_id), {"verdict": "verified", "note": "by hand"})
        args = [
            "evidence",
            backup_id,
            "--store",
            where.url,
            "--out",
            str(out),
            "--rto-target",
            "1h",
        ]
        code = main([*args, *key])
        assert code == 0
    with psycopg.connect(**pg_cluster.connect_kwargs(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    yield Built(out.read_bytes(), backup_id)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS: any call would go to a closed port and fail."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["evidence", "--check", str(path)])
    return code, capsys.readouterr().out


def test_the_bundle_holds_what_an_auditor_needs(built: Built) -> None:
    bundle = json.loads(built.bundle)
    assert bundle["backup_id"] == built.backup_id and bundle["database"] == "shop"
    assert bundle["public_key"]["pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert bundle["manifest"]["signature"]["algorithm"] == "ECDSA_SHA_256"
    assert bundle["roles"]["sha256"] == bundle["roles"]["stored_sha256"]
    (report,) = bundle["reports"]
    assert json.loads(report["text"])["verdict"] == "verified" and report["signature"]
    assert len(bundle["unsigned_reports"]) == 1
    summary = bundle["summary"]
    assert set(summary) == {"restorability", "completeness", "integrity", "recovery_time", "access"}
    assert summary["completeness"]["checks"] == ["table_present", "row_count", "object_count"]
    (run,) = summary["restorability"]["runs"]
    assert run["pass"] >= 1 and run["fail"] == 0
    (timing,) = summary["recovery_time"]["runs"]
    assert summary["recovery_time"]["target_seconds"] == 3600 and timing["met"] is True


def test_a_bundle_validates_offline(
    built: Built, tmp_path: Path, offline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the bundle on its own, with no store and no AWS reachable
    path = tmp_path / "bundle.json"
    path.write_bytes(built.bundle)
    # When an auditor checks it
    code, out = check(path, capsys)
    # Then every check holds and each is listed
    assert code == 0, out
    assert "valid" in out.splitlines()[-1] and "FAIL" not in out
    assert "manifest" in out and "signature verifies" in out
    assert "written unsigned" in out  # the unsigned report is named, not counted


def flip(text: str, at: int) -> str:
    """`text` with the character at `at` replaced by another one of the same kind."""
    char = text[at]
    other = {"0": "1", "A": "B", "a": "b"}.get(char, "1" if not char.isdigit() else "0")
    other = other if other != char else "2"
    return text[:at] + other + text[at + 1 :]


def in_manifest(b: dict[str, Any]) -> None:
    text = b["manifest"]["text"]
    b["manifest"]["text"] = flip(text, text.index('"rows": 200') + len('"rows": 20'))


def in_report(b: dict[str, Any]) -> None:
    text = b["reports"][0]["text"]
    b["reports"][0]["text"] = flip(text, text.index('"restore_seconds": ') + 20)


def in_signature(b: dict[str, Any]) -> None:
    signature = b["manifest"]["signature"]
    signature["signature"] = flip(signature["signature"], len(signature["signature"]) // 2)


def in_report_signature(b: dict[str, Any]) -> None:
    signature = b["reports"][0]["signature"]
    signature["signature"] = flip(signature["signature"], 10)


def in_public_key(b: dict[str, Any]) -> None:
    pem = b["public_key"]["pem"]
    b["public_key"]["pem"] = flip(pem, pem.index("\n") + 40)


def in_summary(b: dict[str, Any]) -> None:
    b["summary"]["restorability"]["runs"][0]["fail"] = 1


@pytest.mark.parametrize(
    "tamper",
    [in_manifest, in_report, in_signature, in_report_signature, in_public_key, in_summary],
    ids=lambda f: f.__name__,
)
def test_a_bundle_fails_once_a_byte_changes(
    built: Built,
    tmp_path: Path,
    offline: None,
    capsys: pytest.CaptureFixture[str],
    tamper: Callable[[dict[str, Any]], None],
) -> None:
    # Given the bundle with one byte changed
    bundle = json.loads(built.bundle)
    tamper(bundle)
    changed = json.dumps(bundle, indent=2).encode()
    assert len(changed) == len(built.bundle)
    assert sum(x != y for x, y in zip(changed, built.bundle, strict=True)) == 1
    path = tmp_path / "bundle.json"
    path.write_bytes(changed)
    # When it is checked
    code, out = check(path, capsys)
    # Then it is not valid, and the failing check is named
    assert code == 1, out
    assert "NOT VALID" in out and "FAIL" in out


def test_building_a_bundle_needs_a_public_key(
    tmp_path: Path, offline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no key flag and no key in the environment
    # When a bundle is asked for
    code = main(["evidence", "latest", "--store", "s3://bucket", "--out", str(tmp_path / "x")])
    # Then it is bad input, nothing is read or written, and the missing key is named
    assert code == 2 and not (tmp_path / "x").exists()
    assert "public key" in capsys.readouterr().err
