"""SIGINT/SIGTERM in the middle of a verification: the command stops, tears the instance down
and records nothing. Runs the real `backproof` command against moto's server on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import pytest

from backproof.store import open_store

from ..conftest import MotoServer, SourceDatabase, take_backup
from .conftest import processes_mentioning

BIG = """
CREATE TABLE big (id bigserial PRIMARY KEY, payload text, n numeric);
INSERT INTO big (payload, n) SELECT md5(i::text) || repeat('x', 200), i FROM generate_series(1, 400000) i;
CREATE INDEX big_payload ON big (payload);
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_during_restore_tears_everything_down(
    source_db: SourceDatabase,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    signum: signal.Signals,
) -> None:

    # Given a backup big enough that its restore takes a while, in S3 on loopback
    source_db.execute(BIG)
    moto_endpoint = moto_server.endpoint
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    s3 = boto3.client("s3")
    kms = boto3.client("kms")
    bucket = f"sig-{os.getpid()}-{signum.value}"
    s3.create_bucket(Bucket=bucket)
    key = kms.create_key()["KeyMetadata"]["Arn"]

    class _S3:
        url = f"s3://{bucket}/x"
        kms_key_id = key

    _, result = take_backup(source_db, _S3(), compression="none")  # type: ignore[arg-type]
    root = Path(tempfile.mkdtemp(prefix="bp-verify-sig-", dir="/tmp"))
    root.chmod(0o755)
    env = {**os.environ, "TMPDIR": str(root), "AWS_ENDPOINT_URL": moto_endpoint}
    try:
        # When the command is signalled once pg_restore is running
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from backproof.cli import run; run()",
                "verify",
                result.manifest.backup_id,
                "--store",
                _S3.url,
                "--json",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        restoring = False
        while time.monotonic() < deadline and proc.poll() is None and not restoring:
            restoring = any(
                "pg_restore" in p and "--dbname" in p for p in processes_mentioning(str(root))
            )
            time.sleep(0.05)
        assert restoring and proc.poll() is None, proc.communicate()
        time.sleep(0.3)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        # Then it exits 130, nothing outlives it, and no verification was recorded
        assert proc.returncode == 130, (out, err)
        assert "interrupted" in err.lower() or "sigterm" in err.lower()
        assert processes_mentioning(str(root)) == []
        assert list(root.iterdir()) == []
        stored = open_store(_S3.url).find(result.manifest.backup_id)
        assert not stored.has_verification
    finally:
        shutil.rmtree(root, ignore_errors=True)
