"""Where a verification restores to: one interface, several kinds of instance.

An `Instance` is provisioned, handed out as a `RestoreTarget` (connection parameters of an
administrative database on a fresh server), and always torn down: on success, on a failed
check, on an exception, on SIGINT/SIGTERM (the CLI turns SIGTERM into an exception, so
`with` blocks unwind). As a last resort, an `atexit` hook tears down anything still live.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, ClassVar

from psycopg.conninfo import make_conninfo

from ..errors import BadInput


@dataclass(frozen=True)
class RestoreTarget:
    """Connection parameters of a database to restore into. The password never reaches argv:
    `child_env()` carries it to pg_restore as PGPASSWORD."""

    host: str
    port: int
    user: str
    dbname: str
    password: str | None = field(default=None, repr=False)
    sslmode: str | None = None

    def with_dbname(self, dbname: str) -> RestoreTarget:
        return replace(self, dbname=dbname)

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"host": self.host, "port": self.port, "user": self.user,
                                  "dbname": self.dbname, "connect_timeout": 15,
                                  "application_name": "backproof"}
        if self.password is not None:
            kwargs["password"] = self.password
        if self.sslmode:
            kwargs["sslmode"] = self.sslmode
        return kwargs

    def conninfo(self) -> str:
        """libpq conninfo without the password, safe for a command line."""
        params: dict[str, Any] = {"host": self.host, "port": self.port, "user": self.user,
                                  "dbname": self.dbname}
        if self.sslmode:
            params["sslmode"] = self.sslmode
        return make_conninfo(**params)

    def child_env(self) -> dict[str, str]:
        # The conninfo on the command line names host, port, user and database, so inherited
        # PG* variables (SSL settings, a passfile) only fill in what it leaves open.
        env = {k: v for k, v in os.environ.items() if k not in ("PGDATABASE", "PGSERVICE")}
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    @property
    def display(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"


class Instance(ABC):
    """A throwaway PostgreSQL server for one verification."""

    kind: ClassVar[str] = ""

    @abstractmethod
    def provision(self) -> RestoreTarget:
        """Create the server and wait until it accepts connections; the target names its
        maintenance database."""

    @abstractmethod
    def teardown(self) -> None:
        """Remove the server and everything it wrote. Idempotent; never raises for 'gone'."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Kind, identifier and server version, for the report."""

    def __enter__(self) -> RestoreTarget:
        _LIVE.add(self)
        try:
            return self.provision()
        except BaseException:
            self._teardown_and_forget()
            raise

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._teardown_and_forget()

    def _teardown_and_forget(self) -> None:
        with signals_deferred():
            try:
                self.teardown()
            finally:
                _LIVE.discard(self)


_DEFERRED = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while a teardown runs, so a second Ctrl-C cannot leave a server
    half-removed; they are delivered (and their usual handlers run) right after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: pending.append(signum))
                for s in _DEFERRED}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)


_LIVE: set[Instance] = set()


@atexit.register
def _teardown_leftovers() -> None:
    for instance in list(_LIVE):
        with contextlib.suppress(Exception):
            instance._teardown_and_forget()


def live_instances() -> list[Instance]:
    return list(_LIVE)


INSTANCE_KINDS = ("local", "rds")


def open_instance(kind: str, *, major: int, **options: Any) -> Instance:
    """An instance of `kind` for a server of major version `major` (or the nearest newer)."""
    if kind == "local":
        from .local import LocalInstance

        return LocalInstance(major=major, **options)
    if kind == "rds":
        from .rds import RdsInstance

        return RdsInstance(major=major, **options)
    raise BadInput(f"unknown instance kind {kind!r}: use one of {', '.join(INSTANCE_KINDS)}")
