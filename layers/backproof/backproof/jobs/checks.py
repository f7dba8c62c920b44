"""Checks on a restored database, compared with the manifest taken at dump time.

`run_checks` takes the restored database's inventory with the same function (and the same
pinned settings) that described the source, and compares the two table by table; then the
operator's own checks run: SQL assertions that must return true, and freshness (the newest
value of a column is no older than a limit, measured from the backup's snapshot time).

Identifiers from the manifest only ever reach SQL through `psycopg.sql.Identifier`.
Operator assertions are SQL the operator wrote on purpose; they run read-only with a timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from ..model.checks import FAIL, PASS, SKIP, WARN, CheckResult, compare
from ..model.manifest import Inventory, Manifest, TableStats
from ..model.operator import OperatorChecks
from ..model.sequences import check_ahead_of_column, compare_sequence
from ..pg.inventory import ALGORITHM_V2, FINGERPRINT_ALGORITHMS, invalid_indexes, take_inventory
from ..pg.messages import error_line, message_subject
from ..pg.restore import RestoreOutcome
from ..pg.sequences import owned_column_extremes
from .operator_checks import first_line, run_operator_checks
from .privilege_checks import compare_privileges

# -- the comparison ---------------------------------------------------------------------------
_NOT_VALID_CONSTRAINTS_SQL = """
SELECT n.nspname, r.relname, k.conname
FROM pg_constraint k JOIN pg_class r ON r.oid = k.conrelid
JOIN pg_namespace n ON n.oid = r.relnamespace
WHERE NOT k.convalidated AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, 3
"""


ProgressFn = Callable[[str], None]


def run_checks(
    manifest: Manifest,
    conn: psycopg.Connection[Any],
    operator_checks: OperatorChecks | None = None,
    *,
    tables: set[tuple[str, str]] | None = None,
    progress: ProgressFn | None = None,
    owners: bool = False,
) -> list[CheckResult]:
    """Compare the database `conn` is connected to with the manifest.

    `tables` limits the comparison to those (schema, name) pairs (a selective restore into a
    database holding other things); object counts are then not compared. `owners`: the
    restore kept owners and grants, so they are compared too (jobs/privilege_checks.py).
    """
    note = progress or (lambda _msg: None)
    expected = manifest.inventory
    with_fingerprints = expected.algorithm in FINGERPRINT_ALGORITHMS
    note("reading the restored database")
    conn.rollback()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    try:
        found = take_inventory(
            conn,
            fingerprints=with_fingerprints,
            on_table=lambda t: note(f"fingerprinted {t.qualified}"),
            source_major=manifest.server_major,
            like=expected,
        )
        results = compare_inventories(expected, found, tables=tables)
        results.extend(compare_privileges(expected, found, tables=tables, restored=owners))
        results.extend(check_owned_sequences(conn, expected, found, tables))
        if not with_fingerprints:
            results.append(
                CheckResult(
                    "fingerprint",
                    "*",
                    expected.algorithm,
                    ALGORITHM_V2,
                    WARN if expected.algorithm != "counts-only" else SKIP,
                    "manifest has no fingerprints this backproof can compare; row counts only",
                )
            )
        results.append(check_indexes_valid(conn, expected.invalid_indexes))
        conn.rollback()
    finally:
        conn.rollback()
        conn.read_only = False
        conn.isolation_level = None
    results.extend(check_constraints_validated(conn))
    if operator_checks:
        note("running operator checks")
        results.extend(run_operator_checks(manifest, conn, operator_checks))
    return results


def compare_inventories(
    expected: Inventory, found: Inventory, *, tables: set[tuple[str, str]] | None = None
) -> list[CheckResult]:
    results: list[CheckResult] = []
    for want in expected.tables:
        if tables is not None and (want.schema, want.name) not in tables:
            continue
        results.extend(_compare_table(want, found.table(want.schema, want.name)))
    if tables is None:
        listed = {(t.schema, t.name) for t in expected.tables}
        for extra in found.tables:
            if (extra.schema, extra.name) not in listed:
                results.append(
                    CheckResult(
                        "table_present",
                        extra.qualified,
                        "absent",
                        "present",
                        FAIL,
                        "the restore holds a table the manifest does not list",
                    )
                )
        results.extend(_compare_objects(expected, found))
    results.extend(_compare_sequences(expected, found, tables))
    return results


def _compare_table(want: TableStats, got: TableStats | None) -> list[CheckResult]:
    subject = want.qualified
    if got is None:
        return [
            CheckResult(
                "table_present",
                subject,
                "present",
                "missing",
                FAIL,
                f"{want.kind} {subject} is not in the restored database",
            )
        ]
    # pg_restore refreshes materialized views from the restored tables, so a view that was
    # stale in the source legitimately differs; the tables under it are checked on their own.
    soft = want.kind == "materialized_view"
    results = [CheckResult("table_present", subject, "present", "present", PASS)]
    rows = compare("row_count", subject, want.rows, got.rows)
    fingerprint = compare("fingerprint", subject, want.fingerprint, got.fingerprint)
    for result in (rows, fingerprint):
        if soft and result.failed:
            result.verdict = WARN
            result.detail = "materialized view re-computed on restore; may differ if it was stale"
    if fingerprint.failed and rows.verdict == PASS:
        fingerprint.detail = "same row count, different contents"
    if want.fingerprint == "" and got.fingerprint == "":
        fingerprint.verdict = SKIP
    results += [rows, fingerprint]
    return results


def _compare_objects(expected: Inventory, found: Inventory) -> list[CheckResult]:
    results = []
    for kind, count in sorted(expected.objects.items()):
        results.append(compare("object_count", kind, count, found.objects.get(kind)))
    want_lo = expected.large_objects
    if want_lo.get("fingerprint"):
        results.append(
            compare(
                "large_objects",
                "fingerprint",
                want_lo["fingerprint"],
                found.large_objects.get("fingerprint"),
            )
        )
    for name, version in sorted(expected.extensions.items()):
        got = found.extensions.get(name)
        if got is None:
            results.append(CheckResult("extension", name, version, None, FAIL, "not installed"))
        elif got != version:
            results.append(
                CheckResult(
                    "extension", name, version, got, WARN, "restored server ships another version"
                )
            )
        else:
            results.append(CheckResult("extension", name, version, got, PASS))
    return results


def _compare_sequences(
    expected: Inventory, found: Inventory, tables: set[tuple[str, str]] | None
) -> list[CheckResult]:
    results = []
    now = {(s.schema, s.name): s for s in found.sequences}
    for seq in expected.sequences:
        key = (seq.schema, seq.name)
        if tables is not None and key not in now:
            continue  # a selective restore need not bring every sequence
        results.extend(compare_sequence(seq, now.get(key), selective=tables is not None))
    return results


def check_owned_sequences(
    conn: psycopg.Connection[Any],
    expected: Inventory,
    found: Inventory,
    tables: set[tuple[str, str]] | None = None,
) -> list[CheckResult]:
    """Each restored sequence (of those the manifest lists) that a column owns hands out
    values beyond the column's rows: otherwise new rows collide. Asked of the restored
    database itself, so manifests of any version get it."""
    listed = {(s.schema, s.name) for s in expected.sequences}
    owned = [
        s
        for s in found.sequences
        if (s.schema, s.name) in listed
        and s.owned_by is not None
        and (tables is None or (s.owned_by.schema, s.owned_by.table) in tables)
    ]
    extremes = owned_column_extremes(conn, owned)
    in_source = {(s.schema, s.name): s.behind_column_in_source for s in expected.sequences}
    results = []
    for seq in owned:
        key = (seq.schema, seq.name)
        if key in extremes:
            results.append(check_ahead_of_column(seq, extremes[key], in_source.get(key)))
        else:
            results.append(
                CheckResult(
                    "sequence_ahead_of_column",
                    seq.qualified,
                    "any",
                    seq.next_value,
                    SKIP,
                    "owned by a column that is not an integer column of a table",
                )
            )
    return results


def check_indexes_valid(
    conn: psycopg.Connection[Any], invalid_in_source: list[str] | None = None
) -> CheckResult:
    """Indexes invalid after the restore fail, unless the manifest records them invalid in the
    source too (e.g. a partitioned index some partition has no index for). Without that record
    (older manifests) every invalid index fails."""
    invalid = invalid_indexes(conn)
    known = set(invalid_in_source or ())
    new = [name for name in invalid if name not in known]
    as_before = [name for name in invalid if name in known]
    detail = ", ".join(new)
    if as_before:
        detail += ("; " if detail else "") + "invalid in the source too: " + ", ".join(as_before)
    return CheckResult(
        "indexes_valid",
        "all indexes",
        len(as_before),
        len(invalid),
        FAIL if new else PASS,
        detail,
    )


def check_constraints_validated(conn: psycopg.Connection[Any]) -> list[CheckResult]:
    """Every constraint pg_restore created was validated as it was added. Constraints that
    are NOT VALID in the restore were NOT VALID in the source too (pg_dump keeps the flag);
    they are validated here in a rolled-back transaction, and a violation is a warning, since
    the source held the same rows."""
    conn.rollback()
    rows = conn.execute(_NOT_VALID_CONSTRAINTS_SQL).fetchall()
    conn.rollback()
    if not rows:
        return [CheckResult("constraints_validated", "all constraints", 0, 0, PASS)]
    results = []
    for schema, table, name in rows:
        subject = f"{schema}.{table}.{name}"
        try:
            with conn.transaction(force_rollback=True):
                conn.execute(
                    sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                        sql.Identifier(schema, table), sql.Identifier(name)
                    )
                )
            results.append(
                CheckResult(
                    "constraints_validated",
                    subject,
                    "valid",
                    "valid",
                    PASS,
                    "NOT VALID in the source; the data satisfies it",
                )
            )
        except psycopg.Error as exc:
            conn.rollback()
            results.append(
                CheckResult(
                    "constraints_validated",
                    subject,
                    "valid",
                    "violated",
                    WARN,
                    f"NOT VALID in the source as well: {first_line(exc)}",
                )
            )
    return results


def restore_check(outcome: RestoreOutcome) -> list[CheckResult]:
    fatal = outcome.fatal
    results = [
        CheckResult(
            "restore",
            "pg_restore",
            "no fatal messages",
            f"exit {outcome.exit_code}, {len(fatal)} fatal, {len(outcome.harmless)} harmless",
            PASS if outcome.ok else FAIL,
            "; ".join(m.text.replace("\n", " ")[:300] for m in fatal[:5])
            or ("" if outcome.ok else "pg_restore failed without a message"),
        )
    ]
    # One row per message, named by its object, so a reader sees what failed and why.
    results += [
        CheckResult(
            "restore",
            message_subject(m),
            "harmless",
            error_line(m),
            FAIL if m.fatal else WARN,
            m.reason,
        )
        for m in [*fatal, *outcome.harmless]
    ]
    return results
