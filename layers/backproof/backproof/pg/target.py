"""The one connection-target type: a source to dump, a server to restore into, an admin
database to create databases in.

The password may come from the URL, PGPASSWORD or a passfile (libpq reads both itself).
Child programs get a conninfo string without it and the password through their environment.
Every session, ours and the children's, starts with the settings session.py pins.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..errors import BadInput, SourceUnavailable, redact
from .session import CLIENT_ENCODING, settings_after_connect, startup_options

CONNECT_TIMEOUT_S = 10
# Inherited variables that could point a child at another database than the conninfo names.
_CHILD_ENV_DROPPED = ("PGDATABASE", "PGSERVICE")


@dataclass(frozen=True)
class Target:
    """libpq connection parameters. Never shows the password (`display`, `conninfo`, repr)."""

    params: dict[str, Any] = field(repr=False)

    @classmethod
    def from_url(cls, url: str, *, what: str = "source", flag: str = "--source-url") -> Target:
        if not url:
            raise BadInput(f"no {what} given: pass {flag} postgresql://USER@HOST:PORT/DBNAME")
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise BadInput(f"{what} URL is malformed: {redact(str(exc))}") from exc
        port = str(params.get("port", ""))
        if port and not all(p.isdigit() for p in port.split(",")):
            raise BadInput(f"{what} URL is malformed: port {port!r} is not a number")
        if not params.get("dbname"):
            raise BadInput(f"{what} URL names no database: add /DBNAME to {flag}")
        return cls(params)

    @classmethod
    def from_params(cls, **params: Any) -> Target:
        return cls({k: v for k, v in params.items() if v is not None})

    def with_dbname(self, dbname: str) -> Target:
        return self.with_params(dbname=dbname)

    def with_params(self, **params: Any) -> Target:
        """A copy with these libpq parameters set (None removes one)."""
        merged = {**self.params, **params}
        return Target({k: v for k, v in merged.items() if v is not None})

    @property
    def dbname(self) -> str:
        return str(self.params.get("dbname", ""))

    @property
    def host(self) -> str:
        return str(self.params.get("host") or os.environ.get("PGHOST", "localhost"))

    @property
    def port(self) -> int:
        return int(str(self.params.get("port") or os.environ.get("PGPORT", "5432")).split(",")[0])

    @property
    def user(self) -> str:
        return str(self.params.get("user") or os.environ.get("PGUSER", ""))

    @property
    def password(self) -> str | None:
        value = self.params.get("password")
        return str(value) if value is not None else None

    @property
    def sslmode(self) -> str | None:
        value = self.params.get("sslmode")
        return str(value) if value is not None else None

    @property
    def display(self) -> str:
        """Where the database is, for messages: never the password."""
        user = self.user
        return f"{user + '@' if user else ''}{self.host}:{self.port}/{self.dbname}"

    def conninfo(self) -> str:
        """libpq conninfo without the password, safe for a command line. Without `options`
        too: the children get them, with the pinned settings, as PGOPTIONS."""
        return make_conninfo(
            **{k: v for k, v in self.params.items() if k not in ("password", "options")}
        )

    def session_options(self) -> str:
        """libpq `options`: the URL's (else PGOPTIONS), then the pinned settings (session.py)."""
        user = self.params.get("options") or os.environ.get("PGOPTIONS")
        return startup_options(str(user) if user else None)

    def child_env(self) -> dict[str, str]:
        """Environment for pg_dump/pg_restore: ours, plus the password if the target has one.
        The conninfo names host, port, user and database, so inherited PG* variables (SSL
        settings, a passfile) only fill in what it leaves open."""
        env = {k: v for k, v in os.environ.items() if k not in _CHILD_ENV_DROPPED}
        env["PGOPTIONS"] = self.session_options()
        if self.params.get("password"):
            env["PGPASSWORD"] = str(self.params["password"])
        return env

    def connect_kwargs(self) -> dict[str, Any]:
        return {
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": "backproof",
            **self.params,
            "options": self.session_options(),
            "client_encoding": CLIENT_ENCODING,
        }

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A connection with the pinned session settings (session.py), whatever defaults the
        database or the role carry."""
        try:
            conn = psycopg.connect(**{**self.connect_kwargs(), **kwargs})
        except psycopg.OperationalError as exc:
            reason = redact(str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc))
            raise SourceUnavailable(
                f"cannot connect to {self.display}: {reason}. Check the host, port, database "
                "name, credentials (URL, PGPASSWORD or passfile) and network access."
            ) from exc
        try:
            for name, value in settings_after_connect(conn.info.server_version).items():
                conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
            conn.commit()  # a session setting made in a transaction lasts only if it commits
        except BaseException:
            conn.close()
            raise
        return conn
