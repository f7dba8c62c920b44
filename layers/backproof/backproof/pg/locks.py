"""Who holds the lock a dump waited for.

pg_dump takes ACCESS SHARE on every table it dumps; a migration holding ACCESS EXCLUSIVE makes
it wait, and all that time the exported snapshot holds back vacuum on the whole source. The
dump therefore waits a bounded time (`--lock-wait-timeout`), and when it gives up the operator
is told which session held the table, and what it was doing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg

from .target import Target

# pg_dump's lock wait runs under statement_timeout; the statement names the table.
_LOCK_STATEMENT = re.compile(r"LOCK TABLE (?P<table>\S+) IN ACCESS SHARE MODE")
_TIMED_OUT = re.compile(r"canceling statement due to (statement|lock) timeout")

_HOLDERS_SQL = """
SELECT a.pid, a.usename, a.application_name, l.mode,
       extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::bigint,
       left(regexp_replace(a.query, '\\s+', ' ', 'g'), 200)
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.relation = to_regclass(%s) AND l.granted
  AND l.mode IN ('AccessExclusiveLock', 'ExclusiveLock', 'ShareRowExclusiveLock')
  AND l.pid <> pg_backend_pid()
ORDER BY 5 DESC
"""


@dataclass(frozen=True)
class LockHolder:
    pid: int
    user: str
    application: str
    mode: str
    seconds: int
    query: str

    def describe(self) -> str:
        app = f", application {self.application!r}" if self.application else ""
        return (
            f"pid {self.pid} (user {self.user}{app}) holds {self.mode} for {self.seconds} s: "
            f"{self.query or '(query not visible to this role)'}"
        )


def waited_for(pg_dump_stderr: str) -> str | None:
    """The table pg_dump gave up waiting for, or None if it failed for another reason."""
    if not _TIMED_OUT.search(pg_dump_stderr):
        return None
    match = _LOCK_STATEMENT.search(pg_dump_stderr)
    return match["table"] if match else None


def holders(target: Target, table: str) -> list[LockHolder]:
    """Sessions holding a lock on `table` that blocks a dump (best effort: [] if unknown)."""
    try:
        with target.connect(autocommit=True) as conn:
            rows: list[tuple[Any, ...]] = conn.execute(_HOLDERS_SQL, (table,)).fetchall()
    except psycopg.Error:
        return []
    return [
        LockHolder(
            int(r[0]), str(r[1]), str(r[2] or ""), str(r[3]), int(r[4] or 0), str(r[5] or "")
        )
        for r in rows
    ]
