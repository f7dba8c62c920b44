"""The operator's own checks on a restored database: SQL assertions that must return true, and
freshness (the newest value of a column no older than a limit at the backup's snapshot time).

Assertions are SQL the operator wrote on purpose; they run read-only, with a timeout, in a
transaction that is rolled back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from ..model.checks import FAIL, PASS, CheckResult
from ..model.manifest import Manifest
from ..model.operator import Assertion, Freshness, OperatorChecks, resolve_table
from ..pg.inventory import pin_settings

ASSERTION_TIMEOUT_MS = 300_000


def run_operator_checks(
    manifest: Manifest, conn: psycopg.Connection[Any], checks: OperatorChecks
) -> list[CheckResult]:
    results = [run_assertion(conn, a) for a in checks.assertions]
    results += [run_freshness(manifest, conn, f) for f in checks.freshness]
    return results


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def run_assertion(conn: psycopg.Connection[Any], assertion: Assertion) -> CheckResult:
    conn.rollback()
    found: Any
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute(
                "SELECT set_config('statement_timeout', %s, true)", (str(ASSERTION_TIMEOUT_MS),)
            )
            rows = conn.execute(assertion.sql.encode()).fetchall()  # the operator's own SQL
    except psycopg.Error as exc:
        conn.rollback()
        return CheckResult(
            "assertion",
            assertion.label,
            True,
            None,
            FAIL,
            f"the assertion failed to run: {first_line(exc)}",
        )
    if len(rows) != 1 or len(rows[0]) != 1:
        found = [list(r) for r in rows[:3]]
        return CheckResult(
            "assertion",
            assertion.label,
            True,
            found,
            FAIL,
            "an assertion must return exactly one row with one boolean column",
        )
    found = rows[0][0]
    return CheckResult("assertion", assertion.label, True, found, PASS if found is True else FAIL)


def run_freshness(
    manifest: Manifest, conn: psycopg.Connection[Any], fresh: Freshness
) -> CheckResult:
    snapshot = manifest.snapshot_time
    limit = f"newest >= {(snapshot - fresh.max_age).isoformat()}"
    located = resolve_table(manifest, fresh.table, fresh.schema)
    if located is None:
        return CheckResult(
            "freshness",
            fresh.label,
            limit,
            None,
            FAIL,
            "no such table (or the name is ambiguous) in the manifest",
        )
    schema, table = located
    conn.rollback()
    try:
        with conn.transaction(force_rollback=True):
            pin_settings(conn)
            row = conn.execute(
                sql.SQL("SELECT max({col})::timestamptz FROM {tbl}").format(
                    col=sql.Identifier(fresh.column), tbl=sql.Identifier(schema, table)
                )
            ).fetchone()
    except psycopg.Error as exc:
        conn.rollback()
        return CheckResult("freshness", fresh.label, limit, None, FAIL, first_line(exc))
    newest: datetime | None = row[0] if row else None
    if newest is None:
        return CheckResult("freshness", fresh.label, limit, None, FAIL, "the column has no values")
    age = snapshot - newest
    ok = age <= fresh.max_age
    return CheckResult(
        "freshness",
        fresh.label,
        limit,
        newest.isoformat(),
        PASS if ok else FAIL,
        f"newest value is {_human(age)} older than the snapshot; limit {_human(fresh.max_age)}",
    )


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = f"{days}d{hours}h" if days else f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"
    return sign + text
