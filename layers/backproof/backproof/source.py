"""Connections to a source database: parse the URL once, keep the password out of argv.

The password may come from the URL, PGPASSWORD or a passfile (libpq reads both itself).
Child programs get a conninfo string without it and the password through their environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .errors import BadInput, SourceUnavailable, redact

CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class SourceSpec:
    params: dict[str, Any] = field(repr=False)

    @classmethod
    def from_url(cls, url: str) -> SourceSpec:
        if not url:
            raise BadInput("no source given: pass --source-url postgresql://USER@HOST:PORT/DBNAME")
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise BadInput(f"source URL is malformed: {redact(str(exc))}") from exc
        port = str(params.get("port", ""))
        if port and not all(p.isdigit() for p in port.split(",")):
            raise BadInput(f"source URL is malformed: port {port!r} is not a number")
        if not params.get("dbname"):
            raise BadInput("source URL names no database: add /DBNAME to --source-url")
        return cls(params)

    @classmethod
    def from_params(cls, **params: Any) -> SourceSpec:
        return cls({k: v for k, v in params.items() if v is not None})

    @property
    def dbname(self) -> str:
        return str(self.params.get("dbname", ""))

    @property
    def display(self) -> str:
        """Where the source is, for messages: never the password."""
        host = self.params.get("host") or os.environ.get("PGHOST", "localhost")
        port = self.params.get("port") or os.environ.get("PGPORT", "5432")
        user = self.params.get("user") or os.environ.get("PGUSER", "")
        return f"{user + '@' if user else ''}{host}:{port}/{self.dbname}"

    def conninfo_without_password(self) -> str:
        return make_conninfo(**{k: v for k, v in self.params.items() if k != "password"})

    def child_env(self) -> dict[str, str]:
        """Environment for pg_dump/pg_restore: inherits ours, adds the URL's password if any."""
        env = dict(os.environ)
        if self.params.get("password"):
            env["PGPASSWORD"] = str(self.params["password"])
        return env

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        params = {
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": "backproof",
            **self.params,
            **kwargs,
        }
        try:
            return psycopg.connect(**params)
        except psycopg.OperationalError as exc:
            reason = redact(str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc))
            raise SourceUnavailable(
                f"cannot connect to {self.display}: {reason}. Check the host, port, database "
                "name, credentials (URL, PGPASSWORD or passfile) and network access."
            ) from exc
