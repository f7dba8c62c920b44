"""Every failure leaves nothing listed as a backup, says what to do in one line, and never
shows a password."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from backproof.cli import main
from backproof.errors import DumpFailed, UploadFailed
from backproof.jobs.backup import BackupRequest, run_backup
from backproof.pg.dump import PgDump
from backproof.pg.programs import PgProgram
from backproof.pg.target import Target
from backproof.store import open_store

from ..conftest import MotoServer, S3Store, SourceDatabase

SECRET = "s3cr3t-Pa55word"


def nothing_stored(store: S3Store) -> None:
    objects = store.s3.list_objects_v2(Bucket=store.bucket).get("Contents", [])
    uploads = store.s3.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    assert objects == [] and uploads == []


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_unreachable_source_is_bad_input_and_writes_nothing(
    s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    code, out, err = run_cli(
        capsys,
        "backup",
        "--source-url",
        f"postgresql://app:{SECRET}@127.0.0.1:{port}/shop",
        "--store",
        s3_store.url,
    )
    assert code == 2
    assert "cannot connect to app@127.0.0.1" in err and "Check the host" in err
    assert SECRET not in out + err
    assert len(err.strip().splitlines()) == 1
    nothing_stored(s3_store)


def test_wrong_password_is_bad_input_and_never_echoed(
    source_db: SourceDatabase,
    s3_store: S3Store,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PGPASSWORD")
    url = source_db.url.replace("backproof@", f"backproof:{SECRET}@")
    code, out, err = run_cli(capsys, "backup", "--source-url", url, "--store", s3_store.url)
    assert code == 2 and "password authentication failed" in err
    assert SECRET not in out + err
    nothing_stored(s3_store)


def test_missing_bucket_is_bad_input(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, "backup", "--source-url", source_db.url, "--store", "s3://no-such-bucket-here/x"
    )
    assert code == 2 and "bucket 'no-such-bucket-here' does not exist" in err
    nothing_stored(s3_store)


def test_disabled_kms_key_is_bad_input(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    s3_store.kms.disable_key(KeyId=s3_store.kms_key_id.split("/")[-1])
    code, _, err = run_cli(
        capsys,
        "backup",
        "--source-url",
        source_db.url,
        "--store",
        s3_store.url,
        "--kms-key-id",
        s3_store.kms_key_id,
    )
    assert code == 2 and "KMS key" in err and "Disabled" in err
    nothing_stored(s3_store)


def test_unknown_kms_key_is_bad_input(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys,
        "backup",
        "--source-url",
        source_db.url,
        "--store",
        s3_store.url,
        "--kms-key-id",
        "alias/does-not-exist",
    )
    assert code == 2 and "alias/does-not-exist" in err and "NotFound" in err
    nothing_stored(s3_store)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--tier", "hourly", "invalid choice: 'hourly'"),
        ("--compression", "lz4", "invalid choice: 'lz4'"),
        ("--database-name", "../etc", "cannot be used in object keys"),
        ("--store", "/tmp/backups", "is not an s3://BUCKET[/PREFIX] URL"),
        ("--source-url", "postgresql://host:notaport/db", "source URL is malformed"),
        ("--source-url", "postgresql://localhost", "names no database"),
    ],
)
def test_malformed_arguments_are_bad_input(
    flag: str,
    value: str,
    message: str,
    source_db: SourceDatabase,
    s3_store: S3Store,
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = {"--store": s3_store.url, "--source-url": source_db.url, flag: value}
    argv = ["backup", *[x for kv in options.items() for x in kv]]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse rejects choices before main's handler runs
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2 and message in err
    nothing_stored(s3_store)


def test_no_fitting_pg_dump_names_server_and_found_versions(
    source_db: SourceDatabase,
    s3_store: S3Store,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given only an old pg_dump is installed
    old = tmp_path / "pg_dump"
    old.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")
    old.chmod(0o755)
    monkeypatch.setattr("backproof.pg.programs.SYSTEM_BIN_GLOBS", ())
    monkeypatch.delenv("BACKPROOF_PG_BIN_DIRS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    # When a backup of a newer server is asked for
    code, _, err = run_cli(capsys, "backup", "--source-url", source_db.url, "--store", s3_store.url)
    # Then it exits 2 naming the server version and what was found
    assert code == 2
    assert "PostgreSQL 15" in err and "needs pg_dump 15 or newer" in err and "9.6" in err
    nothing_stored(s3_store)


def test_pg_dump_dying_mid_stream_aborts_the_upload(
    source_db: SourceDatabase, s3_store: S3Store
) -> None:
    # Given a table large enough that the dump is still running after the first megabyte
    source_db.execute(
        "CREATE TABLE big AS SELECT g, md5(g::text) || repeat('x', 200) AS pad "
        "FROM generate_series(1, 300000) g"
    )
    store = open_store(s3_store.url)

    def kill_dump(event: str, data: dict[str, Any]) -> None:
        # When the server ends pg_dump's session mid-stream
        if event == "bytes" and data["raw"] > 0:
            source_db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'pg_dump'"
            )

    with pytest.raises(DumpFailed, match="pg_dump failed"):
        run_backup(BackupRequest(Target.from_url(source_db.url), store, "big"), progress=kill_dump)
    # Then the multipart upload is gone and nothing is listed
    nothing_stored(s3_store)
    assert store.list_backups(include_incomplete=True) == []


def test_pg_dump_command_line_never_holds_the_password() -> None:
    source = Target.from_url(f"postgresql://app:{SECRET}@db.internal:5433/shop?sslmode=require")
    dump = PgDump(PgProgram(16, 4, Path("/usr/bin/pg_dump")), source, "00000003-1", [])
    assert not any(SECRET in arg for arg in dump.argv)
    assert "--snapshot=00000003-1" in dump.argv and "--no-password" in dump.argv
    assert any("sslmode=require" in a and "host=db.internal" in a for a in dump.argv)
    assert dump.env["PGPASSWORD"] == SECRET


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_dump_aborts_and_leaves_no_backup(
    sig: signal.Signals,
    source_db: SourceDatabase,
    served_store: S3Store,
    moto_server: MotoServer,
    pg_cluster: Any,
) -> None:
    # Given a backup running as its own process against a large table
    source_db.execute(
        # hashes do not compress: the dump keeps streaming for seconds after the upload starts
        "CREATE TABLE big AS SELECT g, md5(g::text) || md5((-g)::text) || md5((g * 7)::text) "
        "|| repeat('y', 300) AS pad FROM generate_series(1, 500000) g"
    )
    env = {**os.environ, **moto_server.env, "PGPASSWORD": pg_cluster.password}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from backproof.cli import run; run()",
            "backup",
            "--source-url",
            source_db.url,
            "--store",
            served_store.url,
            "--json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # When the signal arrives once the dump is streaming
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        uploads = served_store.s3.list_multipart_uploads(Bucket=served_store.bucket).get("Uploads")
        if uploads:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the upload never started")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    # Then it exits non-zero with one line of cause, and nothing is stored or left running
    assert proc.returncode == 130, err
    assert "cleaned up" in err and len(err.strip().splitlines()) == 1
    nothing_stored(served_store)
    with source_db.connect(autocommit=True) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name IN "
            "('pg_dump', 'backproof') AND datname = %s",
            (source_db.dbname,),
        )
        assert left.fetchone() == (0,)


def test_json_failure_names_the_error_class_on_stdout(
    s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys,
        "backup",
        "--source-url",
        f"postgresql://app:{SECRET}@127.0.0.1:1/shop",
        "--store",
        s3_store.url,
        "--json",
    )
    assert code == 2
    error = json.loads(out.strip().splitlines()[-1])
    assert error["error"] == "SourceUnavailable" and error["exit_code"] == 2
    assert "cannot connect" in error["message"] and SECRET not in out + err


def test_every_object_is_tagged_with_its_tier(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        capsys,
        "backup",
        "--source-url",
        source_db.url,
        "--store",
        s3_store.url,
        "--tier",
        "monthly",
        "--json",
    )
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    for key in (result["archive_key"], result["manifest_key"]):
        tags = s3_store.s3.get_object_tagging(Bucket=s3_store.bucket, Key=key)["TagSet"]
        assert {"Key": "backproof:tier", "Value": "monthly"} in tags


def test_failure_after_the_archive_is_stored_removes_it(
    source_db: SourceDatabase, s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the manifest cannot be written (the archive upload already completed)

    source_db.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g")
    store = open_store(s3_store.url)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise UploadFailed("could not write the manifest: simulated outage")

    monkeypatch.setattr(store, "put_bytes", refuse)
    # When the backup runs
    with pytest.raises(UploadFailed, match="simulated outage"):
        run_backup(BackupRequest(Target.from_url(source_db.url), store, "t"))
    # Then the archive is gone too: nothing listed, nothing left
    nothing_stored(s3_store)


def test_a_dump_blocked_by_a_migration_gives_up_naming_the_lock(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a migration holding ACCESS EXCLUSIVE on a table
    source_db.execute("CREATE TABLE accounts (id int); INSERT INTO accounts VALUES (1)")
    migration = source_db.connect(application_name="schema-migration")
    migration.execute("ALTER TABLE accounts ADD COLUMN note text")  # holds the lock, uncommitted
    try:
        # When a backup runs with a short lock wait
        started = time.monotonic()
        code, out, _ = run_cli(
            capsys,
            "backup",
            "--source-url",
            source_db.url,
            "--store",
            s3_store.url,
            "--lock-wait-timeout",
            "2s",
            "--json",
        )
        # Then it gives up soon, naming the table and the session that holds it
        assert time.monotonic() - started < 60
        assert code == 1
        error = json.loads(out.strip().splitlines()[-1])
        assert error["error"] == "LockWaitTimeout"
        assert "public.accounts" in error["message"]
        assert "schema-migration" in error["message"] and "AccessExclusiveLock" in error["message"]
        assert "ALTER TABLE accounts" in error["message"]
    finally:
        migration.close()
    # And nothing was stored
    assert s3_store.s3.list_objects_v2(Bucket=s3_store.bucket).get("KeyCount", 0) == 0


def test_a_snapshot_session_left_idle_too_long_is_ended_and_named(
    source_db: SourceDatabase, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a dump that will wait a few seconds on a lock while the inventory has nothing left
    # to do: a session holds the partitioned parent (which pg_dump locks; the inventory reads
    # only the partition) and lets go after three seconds
    source_db.execute(
        "CREATE TABLE parent (id int) PARTITION BY RANGE (id);"
        "CREATE TABLE child PARTITION OF parent FOR VALUES FROM (0) TO (1000);"
        "INSERT INTO parent SELECT g FROM generate_series(1, 500) g"
    )
    holder = source_db.connect()
    holder.execute("LOCK TABLE ONLY parent IN ACCESS EXCLUSIVE MODE")
    release = threading.Timer(3.0, holder.rollback)
    release.start()
    try:
        # When the backup lets the source end its snapshot session after one idle second
        code, out, _ = run_cli(
            capsys,
            "backup",
            "--source-url",
            source_db.url,
            "--store",
            s3_store.url,
            "--snapshot-idle-timeout",
            "1s",
            "--json",
        )
    finally:
        release.join()
        holder.close()
    # Then the backup fails saying what ended it and what to change, and nothing is stored
    assert code == 1
    error = json.loads(out.strip().splitlines()[-1])
    assert "snapshot session" in error["message"]
    assert "--snapshot-idle-timeout" in error["message"]
    assert s3_store.s3.list_objects_v2(Bucket=s3_store.bucket).get("KeyCount", 0) == 0
