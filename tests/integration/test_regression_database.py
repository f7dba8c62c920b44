"""PostgreSQL's own regression database (some 600 tables and nearly every kind of catalog
object, `tests/support/regression_db.py`, `make regression-db`) backs up and verifies with
zero failed checks, every warning explained.

The verification that must pass restores as a superuser. That is legitimate here, and only
here: the regression database holds C-language functions, base types, operator classes and
families, a table access method and a foreign-data wrapper, which only a superuser can create,
so no RDS master user could restore it either. It is a database for self-hosted servers. The
default mode (as RDS's master user) runs too, and must fail on those superuser-only objects
and on nothing else, naming each.

Figures (tables, checks, warnings with their reasons, seconds) go to
`.cache/regression/verification_figures.json`.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backproof.jobs.verify import VerifyOptions, verify_backup
from backproof.model.checks import WARN
from backproof.model.report import RestoreMessage, VerificationReport
from backproof.pg.cluster import LocalCluster
from backproof.pg.messages import HARMLESS_RULES, SUPERUSER_ONLY_RULES
from backproof.pg.programs import find_program
from backproof.pg.restore import PgRestore
from tests.support import regression_db

from ..conftest import S3Store, SourceDatabase, take_backup
from .conftest import assert_torn_down

SUMMARY_REASON = "summary of the errors listed above (each classified on its own)"
FIGURES = regression_db.regression_dir() / "verification_figures.json"
_QUALIFIED = re.compile(r"\b(\w+)\.(\w+)\b")
_UNQUALIFIED = re.compile(
    r"\b(?:ACCESS METHOD|FOREIGN DATA WRAPPER|SERVER|TRANSFORM FOR|PUBLICATION) (\w+)"
)
_OWNER_TO = re.compile(r"\bOWNER TO (\w+)")
SUPERUSER_REASONS = {r.reason for r in SUPERUSER_ONLY_RULES}


def _require_dump() -> Path:
    dump = regression_db.dump_path()
    if not dump.exists():
        reason = f"{dump} is missing: run `make regression-db` (tests/support/regression_db.py)"
        if os.environ.get("BACKPROOF_REQUIRE_PROVISIONED"):
            pytest.fail(reason)
        pytest.skip(reason)
    return dump


def _create_roles(cluster: LocalCluster) -> None:
    """The roles pg_dumpall recorded (psql meta-commands such as \\restrict left out)."""
    script = "\n".join(
        line
        for line in regression_db.roles_path().read_text().splitlines()
        if not line.startswith("\\")
    )
    with psycopg.connect(**cluster.connect_kwargs(), autocommit=True) as conn:
        conn.execute(script.encode())


def _restore_source(cluster: LocalCluster, dump: Path) -> None:
    """The source: the dump restored as it was made, owners and privileges included."""
    _create_roles(cluster)
    cluster.create_database("regression")
    program = find_program("pg_restore", min_major=15, prefer_major=15, purpose="the source")
    outcome = PgRestore(program, dump, cluster.target("regression"), jobs=2, keep_owners=True).run()
    assert outcome.ok and outcome.exit_code == 0, [m.text for m in outcome.fatal][:5]


def _statement(message: RestoreMessage) -> str:
    """The first line of the statement that failed ("" if the message shows none)."""
    _, _, command = message.text.partition("Command was:")
    return (command.strip().splitlines() or [""])[0]


def _error(message: RestoreMessage) -> str:
    return next((x for x in message.text.splitlines() if "ERROR:" in x), message.text)


def _created(message: RestoreMessage) -> set[str]:
    """Names of what the failed statement creates or changes: "public.f" and "f", and the
    name after ACCESS METHOD / FOREIGN DATA WRAPPER / SERVER."""
    statement = _statement(message)
    names = {m[0] for m in _QUALIFIED.finditer(statement)} | {
        m[2] for m in _QUALIFIED.finditer(statement)
    }
    names |= set(_UNQUALIFIED.findall(statement))
    return names


def _mentioned(message: RestoreMessage) -> set[str]:
    """Names the error is about: quoted ones and schema-qualified ones."""
    error = _error(message)
    return set(re.findall(r'"([^"]+)"', error)) | {m[0] for m in _QUALIFIED.finditer(error)}


def _not_superuser_only(report: VerificationReport) -> list[str]:
    """Fatal messages that are not about an object only a superuser can create, nor about
    one missing because such an object (or, transitively, what needs it) failed, nor about
    ownership given to a role that is a superuser in the source (no master user can make
    one). Superuser-only messages are recognised by the engine's own reasons."""
    demoted = {  # source superusers, created here without SUPERUSER
        c.subject for c in report.checks if c.check == "roles" and "SUPERUSER" in c.detail
    }
    failed: set[str] = set()
    pending = []
    for m in (m for m in report.restore_messages if m.fatal):
        if m.reason in SUPERUSER_REASONS:
            failed |= _created(m)
        elif (owner := _OWNER_TO.search(_statement(m))) and owner[1] in demoted:
            continue
        else:
            pending.append(m)
    changed = True
    while changed:
        changed = False
        for m in list(pending):
            if _mentioned(m) & failed:
                failed |= _created(m)
                pending.remove(m)
                changed = True
    return [f"{_statement(m)}: {_error(m)}" for m in pending]


def _figures(report: VerificationReport, tables: int, seconds: float) -> dict[str, Any]:
    warnings = Counter(f"{c.check}: {c.detail}" for c in report.checks if c.verdict == WARN)
    return {
        "mode": report.instance.get("restore_as"),
        "verdict": report.verdict,
        "tables": tables,
        "checks": report.counts(),
        "warnings": dict(warnings.most_common()),
        "restore_seconds": report.timings.get("restore_seconds"),
        "verify_seconds": round(seconds, 1),
        "fatal_messages": len([m for m in report.restore_messages if m.fatal]),
        "indexes_valid": [
            f"{c.verdict}: {c.detail}" for c in report.checks if c.check == "indexes_valid"
        ],
        "failed": [f"{c.check} {c.subject}: {c.found} ({c.detail})" for c in report.failures],
        "superuser_only": sorted(
            {_statement(m) for m in report.restore_messages if m.reason in SUPERUSER_REASONS}
        ),
        "fatal_not_superuser_only": _not_superuser_only(report),
    }


def test_regression_database_backs_up_and_verifies(
    s3_store: S3Store, isolated_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = _require_dump()
    figures: dict[str, Any] = {}
    # Given the regression database on a PostgreSQL 15 server, with the roles it names
    with LocalCluster(major=15, name="backproof-regress-src") as cluster:
        assert cluster.server is not None and cluster.server.major == 15
        started = time.monotonic()
        _restore_source(cluster, dump)
        figures["source_restore_seconds"] = round(time.monotonic() - started, 1)
        monkeypatch.setenv("PGPASSWORD", cluster.password)
        # When backproof backs it up
        started = time.monotonic()
        store, result = take_backup(SourceDatabase(cluster, "regression"), s3_store, name="regr")
        figures["backup_seconds"] = round(time.monotonic() - started, 1)
    manifest = result.manifest
    tables = len(manifest.inventory.tables)
    figures["pg_dump"] = manifest.tools["pg_dump"]["version"]
    figures["rows"] = manifest.inventory.total_rows
    figures["invalid_in_source"] = manifest.inventory.invalid_indexes
    assert tables > 500

    # When it is verified restoring as a superuser, and as RDS's master user (the default)
    reports: dict[str, VerificationReport] = {}
    for mode in ("superuser", "rds-master"):
        started = time.monotonic()
        options = VerifyOptions(restore_as=mode, write=False)
        reports[mode] = verify_backup(store, manifest.backup_id, options=options)
        figures[mode] = _figures(reports[mode], tables, time.monotonic() - started)
    FIGURES.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))

    # Then as a superuser it passes: no failed check, every warning explained (restore
    # messages by a known harmless rule, the other checks by their detail)
    report = reports["superuser"]
    failed = [(c.check, c.subject, c.found, c.detail) for c in report.failures]
    assert report.passed and failed == [], (failed, report.error)
    known = {r.reason for r in HARMLESS_RULES} | {SUMMARY_REASON}
    restore_warnings = [m for m in report.restore_messages if not m.fatal and m.severity != "info"]
    assert [m.text for m in restore_warnings if m.reason not in known] == []
    assert [c for c in report.checks if c.verdict == WARN and not c.detail] == []
    # (the partitioned indexes invalid in the source are invalid in the restore: no failure)
    assert manifest.inventory.invalid_indexes

    # And as RDS's master user it fails on superuser-only objects (and what needs them) only
    report = reports["rds-master"]
    assert not report.passed and report.instance["restore_as"] == "rds-master"
    superuser_only = [m for m in report.restore_messages if m.reason in SUPERUSER_REASONS]
    assert superuser_only and all(_created(m) for m in superuser_only)
    assert _not_superuser_only(report) == []
    missing = {c.subject for c in report.failures if c.check == "table_present"}
    assert missing and all(
        any(name.split(".")[1] in _error(m) for m in report.restore_messages if m.fatal)
        for name in missing
    )
    assert_torn_down(isolated_tmp)
