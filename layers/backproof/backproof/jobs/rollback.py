"""Roll back an operator restore: put its target back exactly as it was before, from the
safety backup that restore took (its record names it: store/records.py).

A rollback is a restore (jobs/restore.py) of that safety backup into the same target, with the
same rules: the target's database name typed back (--clean --confirm), a dry run that touches
nothing, and first a safety backup of the target as it is now (so a rollback can be rolled back
too). Then every object in the target is dropped, with the statements `pg_dump --clean` writes
for it, in one transaction, and the safety backup is restored into the emptied database: what
the restore added is gone, what it replaced is back. The whole database is then compared with
the safety backup's manifest (tables, exact row counts, fingerprints, object counts).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from ..errors import BadInput, RestoreFailed
from ..model.checks import PASS, CheckResult
from ..pg.programs import find_program
from ..pg.target import Target
from ..store import SAFETY, BackupStore, safety_name
from ..store.records import read_restore_record
from .operator_checks import first_line
from .restore import RestoreRequest, RestoreResult, restore_backup
from .restore_records import RollbackOf

ProgressFn = Callable[[str], None]
# pg_dump only reads the catalogs; a table locked this long (a migration) stops the rollback
# before anything was dropped.
LOCK_WAIT = "5min"


@dataclass
class RollbackRequest:
    restore_id: str
    target_url: str
    target_tls: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    clean: bool = False
    confirm: str | None = None
    jobs: int | None = None
    keep_owners: bool | None = None
    create_roles: bool = False
    pg_bin_dir: Path | None = None


def drop_statements(script: str) -> list[str]:
    """The DROP statements at the head of a `pg_dump --schema-only --clean --if-exists` script,
    in its order (dependents first)."""
    drops = []
    for line in script.splitlines():
        if not line.strip() or line.startswith(("--", "\\", "SET ", "SELECT pg_catalog.")):
            continue
        if not (line.startswith("DROP ") or (line.startswith("ALTER ") and " DROP " in line)):
            break  # the first creation: the drops are over
        if not line.endswith(";"):
            raise RestoreFailed(f"cannot read pg_dump's drop statement {line[:200]!r}")
        drops.append(line)
    return drops


def empty_database(target: Target, *, pg_bin_dir: Path | None = None) -> list[CheckResult]:
    """Drop every object of the database `target` names (and its large objects), all or none."""
    with target.connect() as conn:
        major = conn.info.server_version // 10000
    pg_dump = find_program(
        "pg_dump",
        min_major=major,
        extra_dirs=[pg_bin_dir] if pg_bin_dir else None,
        purpose=f"listing the objects of a PostgreSQL {major} database before a rollback",
    )
    argv = [
        str(pg_dump.path),
        "--schema-only",
        "--clean",
        "--if-exists",
        "--no-password",
        f"--lock-wait-timeout={LOCK_WAIT}",
        f"--dbname={target.conninfo()}",
    ]
    done = subprocess.run(argv, env=target.child_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RestoreFailed(
            f"pg_dump could not list the target's objects ({last}); nothing was dropped"
        )
    drops = drop_statements(done.stdout)
    try:
        with target.connect() as conn, conn.transaction():
            for statement in drops:
                conn.execute(statement.encode())
            conn.execute("SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata")
    except psycopg.Error as exc:
        raise RestoreFailed(
            f"the target could not be emptied for the rollback ({first_line(exc)}); nothing "
            "was dropped"
        ) from exc
    return [
        CheckResult(
            "rollback",
            "target emptied",
            "every object dropped",
            f"{len(drops)} statements",
            PASS,
            "then the safety backup is restored into it",
        )
    ]


def rollback_request(store: BackupStore, req: RollbackRequest) -> RestoreRequest:
    """The restore that rolls back `req.restore_id`; BadInput when it cannot be rolled back
    into this target. Reads the store only."""
    rolled = read_restore_record(store, req.restore_id)
    safety = rolled.get("safety_backup")
    if not isinstance(safety, dict) or not safety.get("backup_id"):
        raise BadInput(
            f"restore {req.restore_id} took no safety backup (its target {rolled.get('target')} "
            "was empty, or a new instance): there is no earlier state to put back"
        )
    target = Target.from_url(req.target_url, what="target", flag="--target-url")
    target = target.with_params(**req.target_tls)
    here = safety_name(target.host, target.port, target.dbname)
    if here != safety.get("target"):
        raise BadInput(
            f"restore {req.restore_id} replaced {rolled.get('target')} ({safety.get('target')}), "
            f"not {target.display} ({here}): a rollback puts back only the database that "
            "restore replaced"
        )
    return RestoreRequest(
        backup_id=str(safety["backup_id"]),
        target_url=req.target_url,
        target_tls=dict(req.target_tls),
        database=here,
        namespace=SAFETY,
        dry_run=req.dry_run,
        clean=req.clean,
        confirm=req.confirm,
        jobs=req.jobs,
        keep_owners=req.keep_owners,
        create_roles=req.create_roles,
        pg_bin_dir=req.pg_bin_dir,
        rollback_of=RollbackOf(
            restore_id=req.restore_id,
            database=str(rolled.get("database")),
            empty_target=lambda t: empty_database(t, pg_bin_dir=req.pg_bin_dir),
        ),
    )


def rollback_restore(
    store: BackupStore,
    req: RollbackRequest,
    progress: ProgressFn | None = None,
    on_recorded: Callable[[str], None] | None = None,
) -> RestoreResult:
    """Put the target of restore `req.restore_id` back as it was before that restore."""
    request = rollback_request(store, req)
    request.on_recorded = on_recorded
    return restore_backup(store, request, progress)
