"""Ephemeral local PostgreSQL clusters: initdb + pg_ctl on a free loopback port.

Used for verification restores off AWS, for `backproof demo`, and by the tests. When the
process runs as root (CI containers), cluster commands run as an unprivileged user, since
initdb refuses root. A cluster is always torn down by `stop()`; use it as a context manager.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from ..errors import BackproofError, ToolNotFound
from .programs import PgProgram, find_program
from .target import Target

SUPERUSER = "backproof"
_START_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as_user() -> str | None:
    """The user to run server programs as: None when we are not root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("BACKPROOF_CLUSTER_USER", "postgres")
    try:
        pwd.getpwnam(name)
    except KeyError as exc:
        raise ToolNotFound(
            f"running as root, a local cluster needs the unprivileged user {name!r} "
            "(initdb refuses root); create it or set BACKPROOF_CLUSTER_USER"
        ) from exc
    return name


class InitDb:
    """`initdb` for a throwaway cluster: scram passwords, UTF-8, C.UTF-8 locale, no fsync."""

    def __init__(self, server: PgProgram, datadir: Path, superuser: str, pwfile: Path) -> None:
        self.argv = [
            str(server.bin_dir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            superuser,
            f"--pwfile={pwfile}",
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]


class PgCtl:
    """`pg_ctl start` / `pg_ctl stop` of one data directory."""

    def __init__(self, server: PgProgram, datadir: Path) -> None:
        self.program = str(server.bin_dir / "pg_ctl")
        self.datadir = datadir

    def start_argv(self, options: dict[str, str], log: Path, timeout_s: int) -> list[str]:
        args = " ".join(f"-c {k}={v}" for k, v in options.items())
        return [
            self.program,
            "-D",
            str(self.datadir),
            "-l",
            str(log),
            "-o",
            args,
            "-w",
            "-t",
            str(timeout_s),
            "start",
        ]

    def stop_argv(self) -> list[str]:
        return [self.program, "-D", str(self.datadir), "-m", "immediate", "-w", "stop"]


@dataclass(frozen=True)
class ServerCertificate:
    """A certificate and key for a local cluster's TLS (tests and demos bring their own CA)."""

    cert_file: Path
    key_file: Path


@dataclass
class LocalCluster:
    """A throwaway cluster. `major` picks the server version (nearest installed >= major)."""

    major: int | None = None
    settings: dict[str, str] = field(default_factory=dict)
    name: str = "backproof"
    tls: ServerCertificate | None = None
    # The bootstrap superuser's name; an RDS-style instance names it as RDS does (rdsadmin),
    # so that it cannot collide with a source's roles, which a restore creates.
    superuser: str = SUPERUSER
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    workdir: Path | None = None
    server: PgProgram | None = None
    _running: bool = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> LocalCluster:
        self.server = find_program(
            "initdb",
            min_major=self.major or 0,
            prefer_major=self.major,
            purpose=f"a local PostgreSQL {self.major or ''} cluster".replace("  ", " "),
        )
        user = _run_as_user()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-pg-"))
        self.workdir.chmod(0o700)
        pwfile = self.workdir / "pw"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if user:
            info = pwd.getpwnam(user)
            for path in (self.workdir, pwfile):
                os.chown(path, info.pw_uid, info.pw_gid)
        try:
            self._run(InitDb(self.server, self.datadir, self.superuser, pwfile).argv)
            pwfile.unlink()
            self._install_certificate(user)
            self._start_server()
        except BaseException:
            self.stop()
            raise
        return self

    def _install_certificate(self, user: str | None) -> None:
        """Copy the TLS material into the cluster's directory, readable by its server only
        (PostgreSQL refuses a key others can read)."""
        if self.tls is None:
            return
        for source, name in ((self.tls.cert_file, "server.crt"), (self.tls.key_file, "server.key")):
            copy = self.workdir_path / name
            shutil.copyfile(source, copy)
            copy.chmod(0o600)
            if user:
                info = pwd.getpwnam(user)
                os.chown(copy, info.pw_uid, info.pw_gid)
        self.settings = {
            **self.settings,
            "ssl": "on",
            "ssl_cert_file": str(self.workdir_path / "server.crt"),
            "ssl_key_file": str(self.workdir_path / "server.key"),
        }

    @property
    def workdir_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir

    def _start_server(self) -> None:
        opts = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.workdir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_wal_size": "2GB",
            "max_connections": "50",
            **self.settings,
        }
        last_error = ""
        for _ in range(5):
            self.port = _free_port()
            assert self.server is not None
            argv = PgCtl(self.server, self.datadir).start_argv(
                {**opts, "port": str(self.port)},
                self.datadir.parent / "server.log",
                _START_TIMEOUT_S,
            )
            result = self._run(argv, check=False)
            if result.returncode == 0:
                self._running = True
                return
            last_error = self.log_tail()
        raise BackproofError(f"local PostgreSQL cluster did not start: {last_error}")

    def stop(self) -> None:
        """Stop the server and delete every file. Safe to call twice, and after a failed start."""
        if self._running:
            assert self.server is not None
            self._run(PgCtl(self.server, self.datadir).stop_argv(), check=False)
            self._running = False
        if self.workdir and self.workdir.exists():
            self._kill_leftover_postmaster()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill_leftover_postmaster(self) -> None:
        pidfile = self.datadir / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, 9)
            time.sleep(0.2)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "data"

    @property
    def running(self) -> bool:
        return self._running

    @property
    def version(self) -> str:
        return self.server.version if self.server else ""

    def _run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        program = Path(argv[0]).name
        user = _run_as_user()
        if user:
            argv = ["runuser", "-u", user, "--", *argv]
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            start_new_session=True,
            cwd=str(self.workdir or "/"),
            timeout=300,
        )
        if check and result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise BackproofError(f"{program} failed ({result.returncode}): {output}")
        return result

    def log_tail(self, lines: int = 20) -> str:
        log = (self.workdir / "server.log") if self.workdir else None
        if log and log.exists():
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def url(self, dbname: str = "postgres") -> str:
        """A connection URL without the password (pass it through `env()` or `connect_kwargs`)."""
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{dbname}"

    def connect_kwargs(self, dbname: str = "postgres") -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.superuser,
            "password": self.password,
            "dbname": dbname,
        }

    def target(self, dbname: str = "postgres") -> Target:
        """The cluster's superuser connection to `dbname`."""
        return Target.from_params(**self.connect_kwargs(dbname))

    def env(self) -> dict[str, str]:
        """Environment for child programs (psql, pg_restore) that connect to this cluster."""
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": self.superuser,
            "PGPASSWORD": self.password,
        }

    def create_database(self, dbname: str) -> None:
        with psycopg.connect(**self.connect_kwargs(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
