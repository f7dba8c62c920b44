"""The container entry point: the command lines it builds, and the process itself run with
the arguments and environment the task definition and the workflow give it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import entry
import pytest

from tests.conftest import MotoServer, SourceDatabase
from tests.support.tls import TestAuthority

from .conftest import ROOT, seed_orders
from .deployment import enable_execution

SECRETS = {
    "source": {
        "username": "app",
        "password": "s3cr3t-source",
        "host": "db.internal",
        "port": 5432,
        "dbname": "orders",
    },
    "staging": {
        "username": "app",
        "password": "s3cr3t-staging",
        "host": "staging.internal",
        "port": 5433,
        "dbname": "orders_staging",
    },
    "rds": {"username": "backproof", "password": "s3cr3t-rds"},
}


def secret(arn: str) -> dict[str, Any]:
    return SECRETS[arn]


@pytest.fixture(autouse=True)
def image_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> str:
    """The RDS CA bundle the task image carries."""
    monkeypatch.setenv("BACKPROOF_RDS_CA_BUNDLE", "/opt/backproof/rds-global-bundle.pem")
    return "/opt/backproof/rds-global-bundle.pem"


def test_backup_command_line_carries_no_password() -> None:
    invocation = entry.build(
        "backup",
        {"database": "orders", "tier": "daily", "secret_arn": "source"},
        secret,
        "s3://bucket",
        "key-arn",
    )
    assert invocation.argv == [
        "backup",
        "--source-url",
        "postgresql://app@db.internal:5432/orders?sslmode=verify-full&sslrootcert=%2Fopt%2Fbackproof%2Frds-global-bundle.pem",
        "--store",
        "s3://bucket",
        "--database-name",
        "orders",
        "--tier",
        "daily",
        "--kms-key-id",
        "key-arn",
        "--json",
    ]
    assert invocation.env == {"PGPASSWORD": "s3cr3t-source"}


def test_restore_into_an_existing_database_needs_its_name_typed_back() -> None:
    request = {
        "database": "orders",
        "backup_id": "latest",
        "tables": ["public.orders"],
        "target": {
            "database": "orders-staging",
            "secret_arn": "staging",
            "confirm": "orders-staging",
        },
    }
    invocation = entry.build("restore", request, secret, "s3://bucket", "key-arn")
    assert invocation.argv[:8] == [
        "restore",
        "latest",
        "--store",
        "s3://bucket",
        "--database-name",
        "orders",
        "--target-url",
        "postgresql://app@staging.internal:5433/orders_staging?sslmode=verify-full&sslrootcert=%2Fopt%2Fbackproof%2Frds-global-bundle.pem",
    ]
    assert invocation.argv[8:] == [
        "--table",
        "public.orders",
        "--clean",
        "--confirm",
        "orders_staging",
        "--json",
    ]
    assert invocation.create_database is None
    assert "s3cr3t" not in " ".join(invocation.argv)


def test_a_rollback_names_the_restore_and_no_backup() -> None:
    request = {
        "database": "orders",
        "backup_id": "20261121T061502.456Z-9f8e7d",  # the safety backup, for the lock
        "rollback": "20261121T061502.456Z-9f8e7d",
        "tables": [],
        "target": {"database": "orders-staging", "secret_arn": "staging", "confirm": "x"},
    }
    invocation = entry.build("restore", request, secret, "s3://bucket", "key-arn")
    assert invocation.argv[:5] == [
        "restore",
        "--rollback",
        "20261121T061502.456Z-9f8e7d",
        "--store",
        "s3://bucket",
    ]
    assert "--database-name" not in invocation.argv
    assert invocation.argv[-4:] == ["--clean", "--confirm", "orders_staging", "--json"]


def test_checking_a_restored_snapshot_runs_verify_snapshot_against_it() -> None:
    request = {
        "database": "orders",
        "way_back": {
            "kind": "snapshot",
            "source_instance": "orders-prod",
            "at": "2026-11-21T03:10:42Z",
            "engine_version": "15.4",
            "snapshot_id": "rds:orders-prod-2026-11-21-03-10",
            "snapshot_type": "automated",
        },
        "checks": {"assertions": ["SELECT true"], "freshness": {}},
        "source_secret_arn": "source",
        "restore_started_at": "2026-11-21T05:00:00+00:00",
        "available_at": "2026-11-21T05:12:30+00:00",
        "target": {
            "instance_id": "bp-1",
            "host": "bp-1.rds.internal",
            "port": 5432,
            "secret_arn": "rds",
        },
    }
    invocation = entry.build("native", request, secret, "s3://bucket", "key-arn")
    argv = invocation.argv
    assert argv[:7] == [
        "verify-snapshot",
        "--snapshot",
        "rds:orders-prod-2026-11-21-03-10",
        "--snapshot-time",
        "2026-11-21T03:10:42Z",
        "--snapshot-type",
        "automated",
    ]
    assert argv[argv.index("--target-url") + 1] == (
        "postgresql://backproof@bp-1.rds.internal:5432/postgres?sslmode=require"
    )
    assert argv[argv.index("--dbname") + 1] == "orders"  # from the source's secret
    assert argv[argv.index("--restore-seconds") + 1] == "750.0"
    assert argv[-3:] == ["--assert", "SELECT true", "--json"]
    assert invocation.env == {"PGPASSWORD": "s3cr3t-rds"}
    assert "s3cr3t" not in " ".join(argv)


def test_restore_into_a_new_instance_creates_the_database_first() -> None:
    request = {
        "database": "orders",
        "backup_id": "latest",
        "target": {
            "instance_id": "bp-1",
            "host": "bp-1.rds.internal",
            "port": 5432,
            "secret_arn": "rds",
            "dbname": "orders",
        },
    }
    invocation = entry.build("restore", request, secret, "s3://bucket", None)
    assert "--clean" not in invocation.argv
    assert "--create-roles" in invocation.argv  # the new instance lacks the source's roles
    assert invocation.create_database == "orders"
    assert invocation.env == {"PGPASSWORD": "s3cr3t-rds"}


def test_verify_runs_against_the_given_server_with_the_operator_checks() -> None:
    request = {
        "database": "orders",
        "backup_id": "b1",
        "checks": {"assertions": ["SELECT true"], "freshness": {"public.orders.created_at": "26h"}},
        "target": {
            "instance_id": "bp-1",
            "host": "bp-1.rds.internal",
            "port": 5432,
            "secret_arn": "rds",
        },
    }
    invocation = entry.build("verify", request, secret, "s3://bucket", None)
    assert invocation.argv == [
        "verify",
        "b1",
        "--store",
        "s3://bucket",
        "--database-name",
        "orders",
        "--target-url",
        "postgresql://backproof@bp-1.rds.internal:5432/postgres?sslmode=require",
        "--assert",
        "SELECT true",
        "--fresh",
        "public.orders.created_at=26h",
        "--json",
    ]
    assert invocation.env == {"PGPASSWORD": "s3cr3t-rds"}


@pytest.mark.parametrize(
    ("returncode", "stdout", "expected"),
    [
        (0, 'progress\n{"backup_id": "b1"}\n', (True, {"backup_id": "b1"}, "")),
        (
            0,
            "no json\n",
            (
                False,
                "TaskOutputMissing",
                "backproof exited 0 without a JSON result on its last line",
            ),
        ),
        (
            2,
            "",
            (
                False,
                "TaskOutputMissing",
                "backproof exited 2 without a JSON result: backproof: source unreachable",
            ),
        ),
        (
            1,
            '{"verdict": "failed", "failed_checks": []}\n',
            (False, "VerificationFailed", '{"verdict": "failed", "failed_checks": []}'),
        ),
        (
            1,
            '{"verdict": "could-not-verify", "error": null}\n',
            (False, "CouldNotVerify", '{"verdict": "could-not-verify", "error": null}'),
        ),
        (
            1,
            '{"error": "SourceUnavailable", "message": "down"}\n',
            (False, "SourceUnavailable", '{"error": "SourceUnavailable", "message": "down"}'),
        ),
    ],
)
def test_outcome_takes_the_error_name_from_the_commands_result(
    returncode: int, stdout: str, expected: tuple[Any, ...]
) -> None:
    assert entry.outcome(returncode, stdout, "backproof: source unreachable\n") == expected


def test_the_configured_lock_wait_reaches_the_backup_command() -> None:
    request = {
        "database": "orders",
        "tier": "daily",
        "secret_arn": "source",
        "lock_wait_timeout_minutes": 15,
    }
    argv = entry.build("backup", request, secret, "s3://bucket", None).argv
    assert argv[argv.index("--lock-wait-timeout") + 1] == "15m"


def test_configured_sslmode_is_used_and_a_bad_one_refused() -> None:
    # Given a configured database whose settings ask for `require`
    request = {"database": "orders", "tier": "daily", "secret_arn": "source", "sslmode": "require"}
    # When the backup command line is built, then the URL carries that mode and no CA
    invocation = entry.build("backup", request, secret, "s3://bucket", None)
    assert invocation.argv[2] == "postgresql://app@db.internal:5432/orders?sslmode=require"
    # And a mode libpq does not know is a bad request, not a silent downgrade
    with pytest.raises(entry.RequestError, match="sslmode 'off'"):
        entry.build("backup", {**request, "sslmode": "off"}, secret, "s3://bucket", None)


def test_unknown_action_is_a_bad_request() -> None:
    with pytest.raises(entry.RequestError, match="unknown action 'dump'"):
        entry.build("dump", {"database": "orders"}, secret, "s3://b", None)


def _task_env(
    moto_server: MotoServer, bucket: str, key: str, authority: TestAuthority
) -> dict[str, str]:
    """The container's environment as the image and task definition set it, without a task
    token; the image's RDS CA bundle is the test clusters' CA."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(Path.home()),
        "BACKPROOF_RDS_CA_BUNDLE": str(authority.ca_file),
        **moto_server.env,
        "BACKPROOF_STORE": f"s3://{bucket}",
        "BACKPROOF_KMS_KEY_ID": key,
        "BACKPROOF_CLI": str(Path(sys.executable).parent / "backproof"),
        # The image's PostgreSQL client (18 there; here every major the tests provide).
        **{k: v for k, v in os.environ.items() if k == "BACKPROOF_PG_BIN_DIRS"},
    }


def test_entry_point_process_backs_up_with_the_workflow_arguments(
    moto_server: MotoServer,
    source_db: SourceDatabase,
    test_authority: TestAuthority,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a bucket, key and connection secret on the loopback moto server
    seed_orders(source_db)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    s3, kms, sm = (boto3.client(n) for n in ("s3", "kms", "secretsmanager"))
    bucket = f"entry-{source_db.dbname.replace('_', '-')}"
    s3.create_bucket(Bucket=bucket)
    key = kms.create_key()["KeyMetadata"]["Arn"]
    cluster = source_db.cluster
    arn = sm.create_secret(
        Name=bucket,
        SecretString=json.dumps(
            {
                "username": "backproof",
                "password": cluster.password,
                "host": "127.0.0.1",
                "port": cluster.port,
                "dbname": source_db.dbname,
            }
        ),
    )["ARN"]
    request = json.dumps({"database": "orders", "tier": "weekly", "secret_arn": arn})
    # When the container's entry point runs with the command the workflow passes
    done = subprocess.run(
        [sys.executable, str(ROOT / "functions/task/entry.py"), "backup", request],
        env=_task_env(moto_server, bucket, key, test_authority),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    # Then it backs up and prints the result, and the password appears nowhere
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rows"] == 1500 and result["tables"] == 2
    assert cluster.password not in done.stdout + done.stderr
    head = s3.head_object(Bucket=bucket, Key=result["manifest_key"])
    assert head["ServerSideEncryption"] == "aws:kms"

    # And with a secret that does not exist it reports a failure the workflow can act on
    missing = json.dumps({"database": "orders", "tier": "weekly", "secret_arn": arn + "-gone"})
    failed = subprocess.run(
        [sys.executable, str(ROOT / "functions/task/entry.py"), "backup", missing],
        env=_task_env(moto_server, bucket, key, test_authority),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert failed.returncode == 1
    assert json.loads(failed.stderr.strip().splitlines()[-1])["error"] == "SecretUnavailable"


STAND_IN = """#!{python}
import signal, sys, time
from pathlib import Path

def stopped(signum, frame):
    Path({marker!r}).write_text("SIGTERM")
    sys.exit(130)

signal.signal(signal.SIGTERM, stopped)
print("restoring...", flush=True)
time.sleep(120)
"""


def test_a_task_whose_workflow_is_gone_stops_its_command(
    moto_server: MotoServer, tmp_path: Path, test_authority: TestAuthority
) -> None:
    # Given a long-running command (a stand-in for a restore that would go on rewriting the
    # target) and a task token the workflow no longer waits for (its execution timed out)
    enable_execution(moto_server.endpoint)
    marker = tmp_path / "stopped"
    command = tmp_path / "backproof"
    command.write_text(STAND_IN.format(python=sys.executable, marker=str(marker)))
    command.chmod(0o755)
    sm = boto3.client("secretsmanager", endpoint_url=moto_server.endpoint)
    arn = sm.create_secret(
        Name="gone", SecretString=json.dumps({"username": "u", "password": "p", "host": "h"})
    )["ARN"]
    env = {
        **_task_env(moto_server, "bucket", "key", test_authority),
        "BACKPROOF_CLI": str(command),
        "BACKPROOF_TASK_TOKEN": "token-of-an-execution-that-ended",
        "BACKPROOF_HEARTBEAT_SECONDS": "1",
    }
    request = json.dumps({"database": "orders", "tier": "daily", "secret_arn": arn})
    # When the task runs
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(ROOT / "functions/task/entry.py"), "backup", request],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
    )
    # Then its first heartbeat finds the workflow gone and the command is stopped (SIGTERM, so
    # it cleans up) long before it would have finished; its output was passed through as it came
    assert marker.read_text() == "SIGTERM"
    assert time.monotonic() - started < 60
    assert done.returncode == 1
    assert "restoring..." in done.stdout
    assert "the workflow no longer waits for this task (InvalidToken)" in done.stderr
