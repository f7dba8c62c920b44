"""Session settings pinned on every connection the engine opens: its own, and pg_dump's and
pg_restore's.

A database or a role may carry defaults of its own (`ALTER DATABASE … SET`, `ALTER ROLE …
SET`): a DateStyle psycopg cannot parse, a 1 ms statement_timeout, read-only transactions, an
idle-in-transaction timeout that kills the snapshot's session while pg_dump runs. Settings
sent in the startup packet (libpq `options`, PGOPTIONS for the children) take precedence over
both and hold from before the first query. Only settings any role may set are pinned
(a non-superuser's startup packet may not carry the others).

Not pinned: search_path (catalog queries here are schema-qualified or find pg_catalog first
anyway; the inventory pins its own; operator assertions keep the database's path) and
client_encoding for the children (pg_dump is given the database's encoding with --encoding,
pg_restore sets the archive's).
"""

from __future__ import annotations

import re

PINNED: dict[str, str] = {
    "DateStyle": "ISO, YMD",  # psycopg parses dates and timestamps in the ISO style only
    "IntervalStyle": "postgres",  # and intervals in the postgres style
    "TimeZone": "UTC",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "standard_conforming_strings": "on",
    "array_nulls": "on",  # else pg_restore loads a NULL array element as the text 'NULL'
    "lc_monetary": "C",  # pg_dump prints money in it; the restore must read it back
    "statement_timeout": "0",
    "lock_timeout": "0",
    "idle_in_transaction_session_timeout": "0",  # the snapshot's session waits on pg_dump
    "default_transaction_read_only": "off",  # a restore writes; reads say READ ONLY themselves
    "default_transaction_isolation": "read committed",
}

# Settings a server knows only from some version on: an unknown name in the startup packet
# refuses the connection, so these are set by a query right after connecting.
PINNED_FROM_VERSION: dict[str, tuple[int, str]] = {
    "idle_session_timeout": (140000, "0"),
    "transaction_timeout": (170000, "0"),
}

# Our own connections decode text in Python: UTF8 whatever a role or database says.
CLIENT_ENCODING = "UTF8"


def _escape(value: str) -> str:
    """libpq splits `options` at whitespace; a backslash keeps the next character."""
    return re.sub(r"([\s\\])", r"\\\1", value)


def startup_options(user_options: str | None = None) -> str:
    """libpq `options` (or PGOPTIONS): the caller's own first, then the pins, which win (the
    server applies `-c` switches in order)."""
    pins = " ".join(f"-c {name}={_escape(value)}" for name, value in PINNED.items())
    return f"{user_options.strip()} {pins}" if user_options and user_options.strip() else pins


def settings_after_connect(server_version: int) -> dict[str, str]:
    """The version-dependent pins this server knows."""
    return {
        name: value
        for name, (since, value) in PINNED_FROM_VERSION.items()
        if server_version >= since
    }
