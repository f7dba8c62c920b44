"""Verify RDS's own ways back: a point-in-time restore of a source instance, or its newest
snapshot, restored into a temporary instance (instances/native.py), then checked.

What is checked: the database is there; the operator's checks (assertions, and freshness
measured from the time the restored instance holds) must pass; and the restored database is
compared with the nearest logical backup taken at or before that time: tables present, exact
row counts, object counts. Those comparisons are information (WARN when different, never a
failure): rows written between the backup and the restored time are expected. Contents are not
fingerprinted for the same reason.

The evidence is a verification report (kind `snapshot` or `point-in-time`) under the store's
`snapshots/` or `point-in-time/` records (store/records.py), never beside a logical backup: a
snapshot that restores says nothing about the logical backup it was compared with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from ..errors import (
    BackproofError,
    BadInput,
    Interrupted,
    SourceUnavailable,
    StoreUnavailable,
    UploadFailed,
)
from ..instances.base import Instance
from ..instances.native import WayBack
from ..model.checks import FAIL, PASS, SKIP, WARN, CheckResult
from ..model.manifest import ArchiveInfo, Inventory, Manifest
from ..model.operator import OperatorChecks
from ..model.report import VerificationReport
from ..pg.inventory import take_inventory
from ..pg.target import Target
from ..store import BackupStore, StoredBackup
from ..store.records import write_way_back_evidence
from .operator_checks import first_line, run_operator_checks

ProgressFn = Callable[[str], None]
MISSING_DATABASE = "3D000"  # invalid_catalog_name


def _quiet(_message: str) -> None:
    return None


@dataclass
class WayBackRequest:
    database: str  # the name the database's backups are filed under
    way: WayBack
    dbname: str | None = None  # the database on the server (default: the nearest backup's)
    operator_checks: OperatorChecks | None = None
    write: bool = True
    # Restore-to-available, when someone else restored the instance (the workflow).
    restore_seconds: float | None = None


def nearest_backup(store: BackupStore, database: str, at: datetime) -> StoredBackup | None:
    """The newest logical backup of `database` whose snapshot was taken at or before `at`."""
    before = [
        b
        for b in store.list_backups(database)
        if b.manifest is not None and b.manifest.snapshot_time <= at
    ]
    return max(before, key=lambda b: b.manifest.snapshot_time) if before else None  # type: ignore[union-attr]


def compare_with_backup(expected: Manifest, found: Inventory) -> list[CheckResult]:
    """Tables, row counts and object counts against a logical backup: information only."""
    since = f"since the logical backup {expected.backup_id} ({expected.snapshot['taken_at']})"
    results: list[CheckResult] = []
    for want in expected.inventory.tables:
        got = found.table(want.schema, want.name)
        if got is None:
            results.append(
                CheckResult(
                    "table_present", want.qualified, "present", "missing", WARN, f"dropped {since}?"
                )
            )
            continue
        same = got.rows == want.rows
        detail = "" if same else f"{got.rows - want.rows:+d} rows {since}"
        verdict = PASS if same else WARN
        results.append(
            CheckResult("row_count", want.qualified, want.rows, got.rows, verdict, detail)
        )
    listed = {(t.schema, t.name) for t in expected.inventory.tables}
    for extra in found.tables:
        if (extra.schema, extra.name) not in listed:
            results.append(
                CheckResult(
                    "table_present", extra.qualified, "absent", "present", WARN, f"created {since}"
                )
            )
    for kind, count in sorted(expected.inventory.objects.items()):
        got_count = found.objects.get(kind)
        results.append(
            CheckResult(
                "object_count",
                kind,
                count,
                got_count,
                PASS if got_count == count else WARN,
                "" if got_count == count else f"changed {since}",
            )
        )
    results.append(
        CheckResult(
            "fingerprint",
            "*",
            None,
            None,
            SKIP,
            "contents are not compared: rows written after the logical backup differ rightly",
        )
    )
    return results


def _reference(found: Inventory, way: WayBack, database: str, dbname: str) -> Manifest:
    """What the operator's checks resolve tables in and measure freshness from: the restored
    database itself, at the time it holds."""
    at = way.at.isoformat()
    return Manifest(
        backup_id=way.label,
        database=database,
        source_database=dbname,
        tier="native",
        created_at=at,
        snapshot={"taken_at": at},
        server={"version": way.engine_version, "major": way.major},
        tools={},
        archive=ArchiveInfo(key="", format="", compression="none", size=0, sha256="", raw_size=0),
        inventory=found,
    )


def check_way_back(
    target: Target,
    way: WayBack,
    *,
    database: str,
    expected: Manifest | None,
    operator_checks: OperatorChecks | None,
    progress: ProgressFn = _quiet,
) -> list[CheckResult]:
    """Checks on the restored database `target` names (see the module's docstring)."""
    try:
        conn = target.connect()
    except SourceUnavailable as exc:
        cause = exc.__cause__
        missing = isinstance(cause, psycopg.Error) and (
            cause.sqlstate == MISSING_DATABASE or "does not exist" in str(cause)
        )
        if not missing:
            raise
        return [
            CheckResult(
                "database_present",
                target.dbname,
                "present",
                "missing",
                FAIL,
                f"{way.label} holds no database {target.dbname!r}: {first_line(exc)}",
            )
        ]
    results = [CheckResult("database_present", target.dbname, "present", "present", PASS)]
    with conn:
        progress("reading the restored database")
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        try:
            found = take_inventory(conn, fingerprints=False)
        finally:
            conn.rollback()
            conn.read_only = False
            conn.isolation_level = None
        if expected is not None:
            results += compare_with_backup(expected, found)
        else:
            results.append(
                CheckResult(
                    "compared_with",
                    database,
                    f"a logical backup at or before {way.at.isoformat()}",
                    None,
                    SKIP,
                    "no logical backup of the database was taken at or before that time",
                )
            )
        if operator_checks:
            progress("running operator checks")
            reference = _reference(found, way, database, target.dbname)
            results += run_operator_checks(reference, conn, operator_checks)
    return results


def _record_error(report: VerificationReport, exc: BaseException) -> None:
    report.error = f"{type(exc).__name__}: {exc}".strip()
    report.add(
        CheckResult(
            "instance", "restored", "restore and checks completed", "error", FAIL, report.error
        )
    )


def verify_way_back(
    store: BackupStore,
    request: WayBackRequest,
    *,
    instance: Instance | None = None,
    admin: Target | None = None,
    instance_info: dict[str, Any] | None = None,
    progress: ProgressFn = _quiet,
) -> VerificationReport:
    """Check a restored way back: on `admin` (a server someone else restored and deletes), or
    on `instance`, provisioned here and always torn down. The report is written to the store
    unless `request.write` is False."""
    way = request.way
    started = time.monotonic()
    report = VerificationReport(way.label, request.database, kind=way.kind)
    report.snapshot_taken_at = way.at.isoformat()
    report.tools["way_back"] = way.to_dict()
    progress("finding the nearest logical backup")
    nearest = nearest_backup(store, request.database, way.at)
    expected = nearest.manifest if nearest is not None else None
    report.tools["compared_with"] = (
        {"backup_id": expected.backup_id, "snapshot_taken_at": expected.snapshot.get("taken_at")}
        if expected is not None
        else None
    )
    dbname = request.dbname or (expected.source_database if expected else None)
    if not dbname:
        raise BadInput(
            f"no logical backup of {request.database!r} names the database on the server: "
            "give it (--dbname)"
        )
    if request.restore_seconds is not None:
        report.timings["restore_seconds"] = request.restore_seconds
    report.instance = dict(instance_info or {"kind": "given"})
    try:
        if instance is not None:
            progress(f"restoring {way.label} into a temporary instance")
            admin = instance.__enter__()
        try:
            if instance is not None:
                report.instance = instance.describe()
                seconds = report.instance.get("seconds_to_available")
                if seconds is not None:
                    report.timings["restore_seconds"] = float(seconds)
            assert admin is not None
            t0 = time.monotonic()
            report.add(
                *check_way_back(
                    admin.with_dbname(dbname),
                    way,
                    database=request.database,
                    expected=expected,
                    operator_checks=request.operator_checks,
                    progress=progress,
                )
            )
            report.timings["checks_seconds"] = round(time.monotonic() - t0, 3)
        finally:
            if instance is not None:
                progress("tearing the instance down")
                instance.__exit__(None, None, None)
    except Interrupted:
        raise
    except (BackproofError, psycopg.Error) as exc:
        _record_error(report, exc)
    report.timings["total_seconds"] = round(time.monotonic() - started, 3)
    report.finish()
    if request.write:
        progress("writing the evidence")
        try:
            report.report_key = write_way_back_evidence(
                store, way.kind, request.database, report.to_dict()
            )
        except (UploadFailed, StoreUnavailable) as exc:
            report.error = f"the evidence could not be written: {exc}"
    return report
