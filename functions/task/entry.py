"""Container entry point for the dump/restore Fargate task.

    entry.py ACTION REQUEST_JSON        ACTION: backup | verify | restore | native

Step Functions starts the task with `.waitForTaskToken` and passes the token in
BACKPROOF_TASK_TOKEN. This adapter reads the connection secret named in the request,
runs the `backproof` command (password only in the child's PGPASSWORD, never on a
command line or in a log), and hands the JSON the command prints on its last stdout line
back to the workflow: SendTaskSuccess on exit 0, SendTaskFailure otherwise, with the
engine's error class as the error name so the workflow can retry what may pass.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlparse

import boto3
import psycopg
from botocore.exceptions import BotoCoreError, ClientError

from backproof.contract import ERROR_COULD_NOT_VERIFY, ERROR_VERIFICATION_FAILED
from backproof.errors import EXIT_FAILED
from backproof.pg.database import create_database
from backproof.pg.target import Target

HEARTBEAT_SECONDS = 60
# How long the command gets to clean up after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 60
# SendTaskHeartbeat errors that mean the execution stopped waiting for this task.
WORKFLOW_GONE = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")
# Step Functions limits: error name 256 characters, cause 32,768, output 256 KiB.
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskFailure.html
MAX_ERROR = 256
MAX_CAUSE = 32_768
# The engine names its error on stdout (`--json`); a run that printed no result did not finish.
NO_RESULT = "TaskOutputMissing"
ACTIONS = ("backup", "verify", "restore", "native")
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# Configured databases: encrypted and the server proven by its certificate (the image carries
# the RDS CA bundle, BACKPROOF_RDS_CA_BUNDLE). Temporary instances, created minutes earlier in
# private subnets by the workflow itself: encrypted at least.
DEFAULT_SSLMODE = "verify-full"
TEMPORARY_INSTANCE_SSLMODE = "require"


class RequestError(ValueError):
    """The request from the workflow is malformed (a bug in the state machine, not data)."""


@dataclass
class Invocation:
    """The `backproof` arguments for one request, and the child's extra environment."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict, repr=False)
    # The server the command restores into (verify, restore), without the password.
    target_url: str | None = None
    # A fresh instance holds only `postgres`; the database to restore into is created first.
    create_database: str | None = None


def _require(request: dict[str, Any], *keys: str) -> None:
    missing = [k for k in keys if not request.get(k)]
    if missing:
        raise RequestError(f"request is missing {', '.join(missing)}")


def tls_parameters(sslmode: str | None) -> dict[str, str]:
    """libpq TLS settings for a connection: the mode asked for and, when it verifies the
    server's certificate, the RDS CA bundle the image carries."""
    mode = sslmode or DEFAULT_SSLMODE
    if mode not in SSLMODES:
        raise RequestError(f"sslmode {mode!r} is not one of {', '.join(SSLMODES)}")
    params = {"sslmode": mode}
    bundle = os.environ.get("BACKPROOF_RDS_CA_BUNDLE")
    if mode in ("verify-ca", "verify-full") and bundle:
        params["sslrootcert"] = bundle
    return params


def connection(
    secret: dict[str, Any],
    *,
    host: str | None = None,
    port: int | None = None,
    dbname: str | None = None,
    sslmode: str | None = None,
) -> tuple[str, str]:
    """(URL without password, password) from an RDS-style secret; host/port may override."""
    user = secret.get("username")
    password = secret.get("password")
    host = host or secret.get("host")
    if not (user and password and host):
        raise RequestError("connection secret needs username, password and host")
    port = port or int(secret.get("port", 5432))
    dbname = dbname or secret.get("dbname") or "postgres"
    return (
        f"postgresql://{quote(str(user), safe='')}@{host}:{port}/{quote(str(dbname), safe='')}"
        f"?{urlencode(tls_parameters(sslmode))}",
        str(password),
    )


def build(
    action: str, request: dict[str, Any], secrets: Any, store: str, kms_key: str | None
) -> Invocation:
    """Translate one workflow request into the `backproof` command line."""
    if action not in ACTIONS:
        raise RequestError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    _require(request, "database")
    if action == "backup":
        return backup(request, secrets, store, kms_key)
    if action == "native":
        return native(request, secrets, store)
    _require(request, "backup_id", "target")
    target = request["target"]
    if "host" in target:  # a temporary instance: RDS keeps only user and password in its secret
        url, password = connection(
            secrets(target["secret_arn"]),
            host=target["host"],
            port=int(target["port"]),
            dbname=target.get("dbname") or "postgres",
            sslmode=TEMPORARY_INSTANCE_SSLMODE,
        )
    else:  # an existing configured database
        url, password = connection(secrets(target["secret_arn"]), sslmode=target.get("sslmode"))
    if action == "verify":
        # The workflow created the server and deletes it; the engine only restores and checks.
        argv = [
            "verify",
            request["backup_id"],
            "--store",
            store,
            "--database-name",
            request["database"],
            "--target-url",
            url,
        ]
        argv += check_args(request) + target_args(request)
        return Invocation([*argv, "--json"], {"PGPASSWORD": password}, target_url=url)

    argv = (
        # A rollback: the engine finds the safety backup in the rolled-back restore's record.
        ["restore", "--rollback", request["rollback"], "--store", store]
        if request.get("rollback")
        else [
            "restore",
            request["backup_id"],
            "--store",
            store,
            "--database-name",
            request["database"],
        ]
    )
    argv += ["--target-url", url]
    for table in request.get("tables") or []:
        argv += ["--table", table]
    if target.get("confirm"):
        # The workflow's confirmation names the configured database; the engine wants the
        # target's own database name typed back, which the secret holds.
        argv += ["--clean", "--confirm", _dbname(url)]
    fresh = _dbname(url) if "host" in target else None
    if fresh:  # a new instance holds none of the source's roles: create them first
        argv.append("--create-roles")
    return Invocation(
        [*argv, "--json"], {"PGPASSWORD": password}, target_url=url, create_database=fresh
    )


def backup(request: dict[str, Any], secrets: Any, store: str, kms_key: str | None) -> Invocation:
    """`backproof backup` for a configured database, or every matching database of an instance
    (`databases`: a pattern)."""
    _require(request, "tier", "secret_arn")
    url, password = connection(secrets(request["secret_arn"]), sslmode=request.get("sslmode"))
    argv = [
        "backup",
        "--source-url",
        url,
        "--store",
        store,
        "--database-name",
        request["database"],
        "--tier",
        request["tier"],
    ]
    if kms_key:
        argv += ["--kms-key-id", kms_key]
    if request.get("databases"):
        # An instance: every matching database, each filed under <database>.<its name>.
        argv += ["--databases", str(request["databases"])]
        for pattern in request.get("exclude_databases") or []:
            argv += ["--exclude-databases", str(pattern)]
    for field_name, flag in (
        ("lock_wait_timeout_minutes", "--lock-wait-timeout"),
        ("snapshot_idle_timeout_minutes", "--snapshot-idle-timeout"),
    ):
        if request.get(field_name) is not None:
            minutes = int(request[field_name])
            argv += [flag, f"{minutes}m" if minutes else "0"]
    return Invocation([*argv, "--json"], {"PGPASSWORD": password})


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not (start and end):
        return None
    began, ended = datetime.fromisoformat(start), datetime.fromisoformat(end)
    return round(max(0.0, (ended - began).total_seconds()), 1)


def native(request: dict[str, Any], secrets: Any, store: str) -> Invocation:
    """Check an instance the workflow restored from RDS's own backups (a snapshot or a point in
    time): `backproof pitr` / `verify-snapshot` against it, never restoring anything itself."""
    _require(request, "way_back", "target")
    way, target = request["way_back"], request["target"]
    url, password = connection(
        secrets(target["secret_arn"]),
        host=target["host"],
        port=int(target["port"]),
        dbname="postgres",
        sslmode=TEMPORARY_INSTANCE_SSLMODE,
    )
    if way.get("kind") == "snapshot":
        argv = ["verify-snapshot", "--snapshot", way["snapshot_id"], "--snapshot-time", way["at"]]
        argv += ["--snapshot-type", str(way.get("snapshot_type") or "")]
    else:
        argv = ["pitr", "--time", way["at"]]
    argv += ["--source-instance", way["source_instance"], "--engine-version"]
    argv += [str(way.get("engine_version") or ""), "--store", store]
    argv += ["--database-name", request["database"], "--target-url", url]
    if request.get("source_secret_arn"):  # the database's name on the server, never more
        dbname = secrets(request["source_secret_arn"]).get("dbname")
        argv += ["--dbname", dbname] if dbname else []
    seconds = _seconds_between(request.get("restore_started_at"), request.get("available_at"))
    if seconds is not None:
        argv += ["--restore-seconds", str(seconds)]
    argv += check_args(request)
    return Invocation([*argv, "--json"], {"PGPASSWORD": password}, target_url=url)


def check_args(request: dict[str, Any]) -> list[str]:
    """The database's configured operator checks, as command-line flags."""
    checks = request.get("checks") or {}
    argv = []
    for assertion in checks.get("assertions") or []:
        argv += ["--assert", assertion]
    for column, age in (checks.get("freshness") or {}).items():
        argv += ["--fresh", f"{column}={age}"]
    return argv


def target_args(request: dict[str, Any]) -> list[str]:
    """The database's recovery time and point objectives, held against in the evidence."""
    argv = []
    for flag, key in (
        ("--rto-target", "rto_target_minutes"),
        ("--rpo-target", "rpo_target_minutes"),
    ):
        if request.get(key):
            argv += [flag, f"{int(request[key])}m"]
    return argv


def ensure_database(url: str, password: str, dbname: str) -> None:
    """Create `dbname` on a fresh server (idempotent, so a retried task does not fail)."""
    admin = Target.from_url(url, what="target").with_params(dbname="postgres", password=password)
    try:
        create_database(admin, dbname)
    except psycopg.errors.DuplicateDatabase:
        pass


def _dbname(url: str) -> str:
    return unquote(urlparse(url).path.lstrip("/"))


def last_json(stdout: str) -> dict[str, Any] | None:
    for raw in reversed(stdout.strip().splitlines()):
        line = raw.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


def outcome(returncode: int, stdout: str, stderr: str) -> tuple[bool, dict[str, Any] | str, str]:
    """(succeeded, output-or-error-name, cause) from the finished command.

    The error name is what the command said on its last stdout line: the engine's error class
    (`{"error": ...}`), or a report whose verdict is failed. A command that printed neither
    did not finish (killed, crashed before parsing its arguments)."""
    result = last_json(stdout)
    if returncode == 0 and result is not None:
        return True, result, ""
    if (
        returncode == EXIT_FAILED
        and result is not None
        and isinstance(result.get("databases"), list)
    ):
        # An instance's backups, some failed: each database's outcome is in the list, and the
        # workflow reports each failure under that database's name.
        return True, result, ""
    if result is None:
        last = (stderr.strip().splitlines() or ["(no output)"])[-1]
        if returncode == 0:
            last = "backproof exited 0 without a JSON result on its last line"
        else:
            last = f"backproof exited {returncode} without a JSON result: {last}"
        return False, NO_RESULT, last[:MAX_CAUSE]
    if isinstance(result.get("error"), str):
        error = result["error"]
    elif result.get("verdict") == "failed":
        error = ERROR_VERIFICATION_FAILED  # the report itself: the backup is defective
    elif result.get("verdict") == "could-not-verify":
        error = ERROR_COULD_NOT_VERIFY  # the run could not finish; nothing said of the backup
    else:
        error = NO_RESULT
    return False, error[:MAX_ERROR], json.dumps(result)[:MAX_CAUSE]


def _cli() -> list[str]:
    configured = os.environ.get("BACKPROOF_CLI")
    if configured:
        return configured.split()
    beside = Path(sys.executable).parent / "backproof"
    return [str(beside)] if beside.exists() else [shutil.which("backproof") or "backproof"]


class Child:
    """The `backproof` process: its output reaches our log line by line as it is produced
    (CloudWatch shows a long job while it runs), stdout is also kept for the JSON result."""

    def __init__(self, invocation: Invocation) -> None:
        env = {**os.environ, **invocation.env}
        env.pop("BACKPROOF_TASK_TOKEN", None)
        self.proc = subprocess.Popen(
            [*_cli(), *invocation.argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._echo, args=(self.proc.stdout, sys.stdout, self.stdout)),
            threading.Thread(target=self._echo, args=(self.proc.stderr, sys.stderr, self.stderr)),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _echo(stream: Any, to: Any, kept: list[str]) -> None:
        for line in stream:
            kept.append(line)
            to.write(line)
            to.flush()

    def stop(self, grace_s: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM (the command cleans up: pg_restore's workers killed, instances torn down),
        then SIGKILL if it has not ended within the grace period."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def wait(self) -> subprocess.CompletedProcess[str]:
        code = self.proc.wait()
        for reader in self._readers:
            reader.join()
        return subprocess.CompletedProcess(
            self.proc.args, code, "".join(self.stdout), "".join(self.stderr)
        )


def run(
    invocation: Invocation, workflow: Workflow | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `backproof` to its end; forward SIGTERM so it cleans up; stop it as soon as the
    workflow it reports to is gone (timed out, stopped, failed elsewhere)."""
    child = Child(invocation)
    previous = signal.signal(signal.SIGTERM, lambda *_: child.proc.send_signal(signal.SIGTERM))
    try:
        if workflow is None:
            return child.wait()
        with workflow.heartbeats(on_gone=child.stop):
            return child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


class Workflow:
    """The Step Functions task this run reports to (nothing to report to without a token)."""

    def __init__(self, token: str | None) -> None:
        self.token = token or ""
        self.client = boto3.client("stepfunctions") if token else None
        # Why the workflow stopped listening, once it has (then no result is sent).
        self.gone: str | None = None

    def fail(self, error: str, cause: str) -> int:
        print(json.dumps({"error": error, "cause": cause}), file=sys.stderr)
        if self.client and self.gone is None:
            self.client.send_task_failure(
                taskToken=self.token, error=error[:MAX_ERROR], cause=cause[:MAX_CAUSE]
            )
        return 1

    def succeed(self, output: dict[str, Any]) -> int:
        if self.client and self.gone is None:
            self.client.send_task_success(taskToken=self.token, output=json.dumps(output))
        return 0

    def beat(self) -> bool:
        """One heartbeat; False once the workflow has stopped waiting for this task. Transient
        errors (throttling, the network) are logged and the next beat tries again."""
        assert self.client is not None
        try:
            self.client.send_task_heartbeat(taskToken=self.token)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in WORKFLOW_GONE:
                self.gone = code
                return False
            print(f"heartbeat failed, will retry: {code or exc}", file=sys.stderr, flush=True)
        except BotoCoreError as exc:
            print(f"heartbeat failed, will retry: {exc}", file=sys.stderr, flush=True)
        return True

    @contextmanager
    def heartbeats(self, on_gone: Callable[[], None]) -> Iterator[None]:
        """Tell the workflow the task is alive (its HeartbeatSeconds is 600); when it no longer
        listens, call `on_gone` (stop the work: nobody would act on its result)."""
        stop = threading.Event()
        interval = float(os.environ.get("BACKPROOF_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS))

        def beat() -> None:
            while not stop.wait(interval):
                if not self.beat():
                    print(
                        f"the workflow no longer waits for this task ({self.gone}); stopping",
                        file=sys.stderr,
                        flush=True,
                    )
                    on_gone()
                    return

        if self.client:
            threading.Thread(target=beat, daemon=True).start()
        try:
            yield
        finally:
            stop.set()


def prepare(args: list[str]) -> Invocation:
    if len(args) != 2:
        raise RequestError("usage: entry.py ACTION REQUEST_JSON")
    secrets_client = boto3.client("secretsmanager")

    def secret(arn: str) -> dict[str, Any]:
        return json.loads(secrets_client.get_secret_value(SecretId=arn)["SecretString"])

    return build(
        args[0],
        json.loads(args[1]),
        secret,
        os.environ["BACKPROOF_STORE"],
        os.environ.get("BACKPROOF_KMS_KEY_ID"),
    )


def main(argv: list[str] | None = None) -> int:
    workflow = Workflow(os.environ.get("BACKPROOF_TASK_TOKEN"))
    try:
        invocation = prepare(sys.argv[1:] if argv is None else argv)
    except (RequestError, json.JSONDecodeError, KeyError) as exc:
        return workflow.fail("BadRequest", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # secret unreadable: report it rather than leave the workflow waiting
        return workflow.fail("SecretUnavailable", f"{type(exc).__name__}: {exc}")
    if invocation.create_database and invocation.target_url:
        try:
            ensure_database(
                invocation.target_url, invocation.env["PGPASSWORD"], invocation.create_database
            )
        except Exception as exc:
            return workflow.fail("TargetUnavailable", f"{type(exc).__name__}: {exc}")
    finished = run(invocation, workflow)
    if workflow.gone is not None:
        print(f"stopped: the workflow is gone ({workflow.gone})", file=sys.stderr)
        return 1
    ok, payload, cause = outcome(finished.returncode, finished.stdout, finished.stderr)
    if not ok:
        return workflow.fail(str(payload), cause)
    return workflow.succeed(payload)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
