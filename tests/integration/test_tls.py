"""TLS to PostgreSQL: `--sslmode`/`--sslrootcert` reach the engine's connections and pg_dump's,
a certificate that does not verify stops the backup before anything is written, and a server
without TLS is refused when TLS is required."""

from __future__ import annotations

from pathlib import Path

import pytest

from backproof.cli import main
from backproof.pg.cluster import LocalCluster
from tests.support.tls import TestAuthority, make_authority

from ..conftest import S3Store, SourceDatabase


def backup(
    capsys: pytest.CaptureFixture[str], url: str, store: S3Store, *tls: str
) -> tuple[int, str]:
    code = main(["backup", "--source-url", url, "--store", store.url, "--json", *tls])
    out, err = capsys.readouterr()
    return code, out + err


def test_backup_verifies_the_server_certificate(
    source_db: SourceDatabase,
    s3_store: S3Store,
    test_authority: TestAuthority,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a source serving TLS with a certificate for 127.0.0.1 from the test CA
    source_db.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g")
    # When it is backed up with full verification against that CA
    ca = str(test_authority.ca_file)
    code, output = backup(
        capsys, source_db.url, s3_store, "--sslmode", "verify-full", "--sslrootcert", ca
    )
    # Then the backup succeeds (the engine's connection and pg_dump's both verified it)
    assert code == 0, output
    keys = [o["Key"] for o in s3_store.s3.list_objects_v2(Bucket=s3_store.bucket)["Contents"]]
    assert any(k.endswith("/manifest.json") for k in keys)


def test_a_certificate_from_another_authority_stops_the_backup(
    source_db: SourceDatabase,
    s3_store: S3Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a CA that did not sign the server's certificate
    other = make_authority(tmp_path / "other")
    # When the backup asks for verify-full against it
    code, output = backup(
        capsys,
        source_db.url,
        s3_store,
        "--sslmode",
        "verify-full",
        "--sslrootcert",
        str(other.ca_file),
    )
    # Then it stops as bad input naming the certificate problem, and nothing is stored
    assert code == 2
    assert "certificate" in output
    assert s3_store.s3.list_objects_v2(Bucket=s3_store.bucket)["KeyCount"] == 0


def test_tls_required_against_a_server_without_it_is_refused(
    s3_store: S3Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a server that does not offer TLS
    with LocalCluster(name="backproof-plain") as plain:
        plain.create_database("shop")
        monkeypatch.setenv("PGPASSWORD", plain.password)
        # When a backup requires TLS
        code, output = backup(capsys, plain.url("shop"), s3_store, "--sslmode", "require")
    # Then it is refused, nothing stored
    assert code == 2
    assert "SSL" in output
    assert s3_store.s3.list_objects_v2(Bucket=s3_store.bucket)["KeyCount"] == 0
