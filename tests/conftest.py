"""Shared fixtures: real PostgreSQL clusters, moto for S3 and KMS.

Test settings live here (region, fake credentials, Powertools switches) rather than
scattered through the tests.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import boto3
import psycopg
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

for _name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update(
    {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": "backproof",
        "POWERTOOLS_METRICS_NAMESPACE": "Backproof",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
    }
)

DATA = Path(__file__).parent / "data"
SOURCE_MAJOR = int(os.environ.get("BACKPROOF_TEST_SOURCE_MAJOR", "15"))

from backproof.jobs.backup import BackupRequest, BackupResult, ProgressFn, run_backup  # noqa: E402
from backproof.pg.cluster import LocalCluster  # noqa: E402
from backproof.pg.target import Target  # noqa: E402
from backproof.signing import open_signing  # noqa: E402
from backproof.store import BackupStore, open_store  # noqa: E402
from tests.support.tls import TestAuthority, make_authority  # noqa: E402


@pytest.fixture(scope="session")
def test_authority(tmp_path_factory: pytest.TempPathFactory) -> TestAuthority:
    """A CA for the session's clusters. Deployed tasks verify RDS with the CA bundle the image
    carries (BACKPROOF_RDS_CA_BUNDLE); tests that run the task point that at this CA, so
    `verify-full` really verifies."""
    directory = tmp_path_factory.mktemp("tls")
    directory.chmod(0o755)
    return make_authority(directory)


@pytest.fixture(scope="session")
def pg_cluster(test_authority: TestAuthority) -> Iterator[LocalCluster]:
    """One real cluster for the session, serving TLS; tests create their own databases in it.
    PostgreSQL SOURCE_MAJOR (or the nearest newer), not the newest installed: with the other
    majors provisioned (BACKPROOF_PG_BIN_DIRS) the tools are 18, as deployed, and the sources
    stay older than the tools, as most sources are (tests/integration/test_versions.py covers
    every major)."""
    with LocalCluster(
        major=SOURCE_MAJOR, name="backproof-test", tls=test_authority.server
    ) as cluster:
        yield cluster


@dataclass
class SourceDatabase:
    cluster: LocalCluster
    dbname: str

    @property
    def url(self) -> str:
        """Connection URL without password; the password travels in PGPASSWORD."""
        return self.cluster.url(self.dbname)

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(**self.cluster.connect_kwargs(self.dbname), **kwargs)

    def execute(self, statement: str, params: Any = None) -> None:
        with self.connect(autocommit=True) as conn:
            conn.execute(statement, params)

    def run_sql_file(self, path: Path) -> None:
        with self.connect(autocommit=True) as conn:
            conn.execute(path.read_text())


@pytest.fixture
def source_db(
    pg_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SourceDatabase]:
    """A fresh empty database; PGPASSWORD is set so URLs need no password."""
    name = f"src_{secrets.token_hex(4)}"
    pg_cluster.create_database(name)
    monkeypatch.setenv("PGPASSWORD", pg_cluster.password)
    yield SourceDatabase(pg_cluster, name)
    with psycopg.connect(**pg_cluster.connect_kwargs(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def awkward_db(source_db: SourceDatabase) -> SourceDatabase:
    """A database full of data that trips naive dump/compare code."""
    source_db.run_sql_file(DATA / "awkward.sql")
    return source_db


@dataclass
class S3Store:
    bucket: str
    url: str
    kms_key_id: str
    s3: Any
    kms: Any


@pytest.fixture
def s3_store() -> Iterator[S3Store]:
    """moto in-process: a bucket and a customer KMS key."""

    with mock_aws():
        s3 = boto3.client("s3")
        kms = boto3.client("kms")
        bucket = f"backups-{secrets.token_hex(4)}"
        s3.create_bucket(Bucket=bucket)
        key_id = kms.create_key(Description="backproof test key")["KeyMetadata"]["Arn"]
        yield S3Store(bucket, f"s3://{bucket}/team-a", key_id, s3, kms)


@dataclass
class MotoServer:
    endpoint: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto as a real HTTP endpoint on loopback, for tests that run backproof as a process."""

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    yield MotoServer(endpoint, env)
    server.stop()


@pytest.fixture
def served_store(moto_server: MotoServer) -> S3Store:
    """A bucket and KMS key on the loopback moto server."""

    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint)
    kms = boto3.client("kms", endpoint_url=moto_server.endpoint)
    bucket = f"served-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=bucket)
    key_id = kms.create_key(Description="backproof served key")["KeyMetadata"]["Arn"]
    return S3Store(bucket, f"s3://{bucket}/p", key_id, s3, kms)


class StoreAddress(Protocol):
    """Where a test's backups go: a bucket URL and the KMS key to encrypt with."""

    @property
    def url(self) -> str: ...

    @property
    def kms_key_id(self) -> str: ...


def take_backup(
    db: SourceDatabase,
    where: StoreAddress,
    *extra_pg_dump_args: str,
    name: str = "shop",
    tier: str = "manual",
    compression: str = "zstd",
    fingerprints: bool = True,
    progress: ProgressFn | None = None,
    jobs: int = 1,
) -> tuple[BackupStore, BackupResult]:
    """The one way tests take a real backup of `db` (through the engine, not the CLI). Where
    the destination has a signing key (the workflow tests' world), the manifest is signed
    with it, as the deployed task signs. With `jobs` > 1 even a small database is split (the
    size thresholds are for speed, not correctness)."""
    store = open_store(where.url, kms_key_id=where.kms_key_id)
    signing_key = getattr(where, "signing_key_arn", None)
    request = BackupRequest(
        source=Target.from_url(db.url),
        store=store,
        database_name=name,
        tier=tier,
        compression=compression,
        fingerprints=fingerprints,
        extra_pg_dump_args=list(extra_pg_dump_args),
        signing=open_signing(kms_key_id=signing_key) if signing_key else None,
        jobs=jobs,
        split_min_bytes=0,
        split_min_table_bytes=0,
    )
    if progress is None:
        return store, run_backup(request)
    return store, run_backup(request, progress=progress)
