"""Operator restores (`backproof restore`, the console's restore workflow): validate, plan,
check integrity before the target is touched, take a safety backup of a non-empty target,
pg_restore (all, or chosen tables with everything that belongs to them), then check.

`select_backup` and `require_confirmation` are the one validation of a restore request; the
CLI and the workflow's validate_restore handler both use them.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput
from ..model.manifest import Manifest
from ..model.operator import OperatorChecks, resolve_table, split_identifier_path
from ..model.report import VerificationReport
from ..model.restore import RestorePlan
from ..pg.database import user_relations
from ..pg.messages import HARMLESS_RULES, OWNERSHIP_SKIPPED_RULES
from ..pg.programs import PgProgram
from ..pg.restore import PgRestore, restore_archive
from ..pg.target import Target
from ..pg.toc import expand_partitioned, select_table_entries
from ..signing import Signing
from ..store import BACKUPS, SAFETY, BackupStore, StoredBackup, safety_name
from . import default_jobs
from .backup import BackupRequest, run_backup
from .checks import restore_check, run_checks
from .integrity import check_integrity
from .ownership import load_roles, plan_owners, roles_for_restore
from .restore_records import Recorder, RollbackOf
from .verify import select_pg_restore

ProgressFn = Callable[[str], None]


@dataclass
class RestoreRequest:
    backup_id: str
    target_url: str
    # libpq TLS settings (sslmode, sslrootcert) applied over the URL's.
    target_tls: dict[str, str] = field(default_factory=dict)
    database: str | None = None
    tables: list[str] = field(default_factory=list)
    dry_run: bool = False
    clean: bool = False
    confirm: str | None = None
    jobs: int | None = None
    # None: keep owners and grants when the backup recorded its roles (the default);
    # True: --keep-owners (kept even for older backups); False: --no-owners.
    keep_owners: bool | None = None
    create_roles: bool = False  # --create-roles: create the roles the target lacks
    pg_bin_dir: Path | None = None
    operator_checks: OperatorChecks | None = None
    # Checks the backup's manifest signature before the target is touched; signs the safety
    # backup's manifest.
    signing: Signing | None = None
    # Where the backup is filed: a database's backups, or (a rollback) a target's safety ones.
    namespace: str = BACKUPS
    rollback_of: RollbackOf | None = None  # jobs/rollback.py
    # Told the restore's id once its record exists, before anything in the target is replaced.
    on_recorded: Callable[[str], None] | None = None


@dataclass
class RestoreResult:
    plan: RestorePlan
    report: VerificationReport | None = None  # after a real restore
    safety_backup_id: str | None = None
    restore_id: str | None = None  # its record in the store (store/records.py)


@dataclass
class Selection:
    """The backup a request names, and the tables it asks for."""

    stored: StoredBackup
    manifest: Manifest
    tables: list[tuple[str, str]]
    # Names the manifest does not list: maybe partitioned parents, resolved from the archive
    # once its integrity is proved (expand_partitioned).
    unresolved: list[tuple[str | None, str]]

    @property
    def names(self) -> list[str]:
        return [f"{s}.{n}" for s, n in self.tables] + [
            f"{s + '.' if s else ''}{n} (with its partitions)" for s, n in self.unresolved
        ]


def resolve_tables(
    manifest: Manifest,
    names: list[str],
    *,
    unresolved: list[tuple[str | None, str]] | None = None,
) -> list[tuple[str, str]]:
    """(schema, table) for each --table name. Names the manifest does not list raise BadInput,
    or, with `unresolved`, are collected there (partitioned parents: see expand_partitioned)."""
    chosen: list[tuple[str, str]] = []
    for name in names:
        parts = split_identifier_path(name)
        if len(parts) > 2:
            raise BadInput(f"--table wants [SCHEMA.]TABLE, got {name!r}")
        schema, table = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
        found = resolve_table(manifest, table, schema)
        if found is None and unresolved is not None:
            unresolved.append((schema, table))
            continue
        if found is None:
            raise BadInput(
                f"table {name!r} is not in backup {manifest.backup_id} (or the name is "
                "ambiguous: add the schema)"
            )
        if found not in chosen:
            chosen.append(found)
    return chosen


def select_backup(
    store: BackupStore,
    backup_id: str,
    database: str | None,
    tables: list[str],
    *,
    archive_names: bool = True,
    namespace: str = BACKUPS,
) -> Selection:
    """The backup (its manifest readable) and the requested tables; BadInput naming what is
    wrong. Reads the store only. With `archive_names`, a name the manifest does not list is
    kept for the archive's TOC to resolve (a partitioned parent); without, it is refused."""
    stored = store.find(backup_id, database, namespace=namespace)
    manifest = store.load_manifest(stored)
    unresolved: list[tuple[str | None, str]] = []
    selected = resolve_tables(manifest, tables, unresolved=unresolved if archive_names else None)
    return Selection(stored, manifest, selected, unresolved)


def require_confirmation(dbname: str, confirm: str | None, *, field_hint: str) -> None:
    """A restore over an existing database needs its name typed back."""
    if confirm != dbname:
        raise BadInput(
            f"restoring into the existing database {dbname!r} replaces its objects: "
            f"{field_hint.format(name=dbname)}"
        )


def plan_restore(store: BackupStore, req: RestoreRequest) -> tuple[RestorePlan, Target, Selection]:
    """Validate everything and decide what would happen; touches nothing. BadInput (exit 2)
    on any problem with the request."""
    target = Target.from_url(req.target_url, what="target", flag="--target-url")
    target = target.with_params(**req.target_tls)
    chosen = select_backup(store, req.backup_id, req.database, req.tables, namespace=req.namespace)
    selected, unresolved = chosen.tables, chosen.unresolved
    existing = user_relations(target)
    if existing and not req.clean:
        clash = existing & {(t.schema, t.name) for t in chosen.manifest.inventory.tables}
        parents = {name for _, name in unresolved} & {name for _, name in existing}
        if not (selected or unresolved) or clash & set(selected) or parents:
            raise BadInput(
                f"target database {target.dbname!r} is not empty ({len(existing)} relations); "
                f"restoring over it needs --clean --confirm {target.dbname}"
            )
    if req.clean:
        require_confirmation(
            target.dbname, req.confirm, field_hint="type its name back with --confirm {name}"
        )
    rows = sum(
        t.rows
        for t in chosen.manifest.inventory.tables
        if not (selected or unresolved) or (t.schema, t.name) in selected
    )
    plan = RestorePlan(
        backup_id=chosen.stored.backup_id,
        database=chosen.stored.database,
        target=target.display,
        target_dbname=target.dbname,
        tables=chosen.names,
        target_tables=len(existing),
        clean=req.clean,
        safety_backup=req.clean and bool(existing),
        rows=rows,
    )
    owning = plan_owners(
        target, chosen.manifest, keep_owners=req.keep_owners, create_roles=req.create_roles
    )
    plan.owners, plan.roles_to_create, plan.owners_note = owning.owners, owning.create, owning.note
    return plan, target, chosen


def _selection_list(
    program: PgProgram, archive: Path, selected: list[tuple[str, str]], target: Target, work: Path
) -> Path:
    """pg_restore's --use-list file for a selective restore into the target as it is now."""
    present = user_relations(target) | set(selected)
    list_file = work / "selected.list"
    entries = select_table_entries(program, archive, set(selected), present=present)
    list_file.write_text("\n".join(entries) + "\n")
    return list_file


def restore_backup(
    store: BackupStore, req: RestoreRequest, progress: ProgressFn | None = None
) -> RestoreResult:
    """Operator restore: plan, integrity, safety backup, pg_restore, checks."""
    note = progress or (lambda _m: None)
    plan, target, chosen = plan_restore(store, req)
    stored, manifest = chosen.stored, chosen.manifest
    selected, unresolved = list(chosen.tables), chosen.unresolved
    result = RestoreResult(plan)
    if req.dry_run:
        return result
    pg_restore = select_pg_restore(manifest, [req.pg_bin_dir] if req.pg_bin_dir else None)
    report = VerificationReport(
        stored.backup_id, stored.database, kind="rollback" if req.rollback_of else "restore"
    )
    records = Recorder(
        store,
        plan,
        target,
        namespace=req.namespace,
        rollback_of=req.rollback_of,
        on_recorded=req.on_recorded,
    )
    report.tools["pg_restore"] = {"version": pg_restore.version, "path": str(pg_restore.path)}
    report.instance = {"kind": "existing", "target": plan.target}
    with tempfile.TemporaryDirectory(prefix="backproof-restore-") as work:
        archive = Path(work) / "archive.dump"
        note("checking the backup's integrity")
        t0 = time.monotonic()
        _, integrity = check_integrity(
            store,
            stored,
            archive_path=archive,
            progress=note,
            consequence="the target was not touched",
            signing=req.signing,
        )
        report.add(*integrity)  # before the target
        report.timings["integrity_seconds"] = round(time.monotonic() - t0, 3)
        if plan.safety_backup:
            note("taking a safety backup of the target")
            # Filed under the target's own identity (instance and database), apart from every
            # database's backups: staging's safety backup never becomes production's latest.
            name = safety_name(target.host, target.port, target.dbname)
            safety = run_backup(
                BackupRequest(
                    source=target,
                    store=store,
                    database_name=name,
                    tier="safety",
                    namespace=SAFETY,
                    signing=req.signing,
                )
            )
            result.safety_backup_id = safety.manifest.backup_id
            report.tools["safety_backup"] = {
                "backup_id": safety.manifest.backup_id,
                "target": name,
                "namespace": SAFETY,
            }
            records.started(report)  # before anything in the target is replaced
            if req.on_recorded:
                req.on_recorded(report.run_id)
        if unresolved:
            selected += [
                t for t in expand_partitioned(pg_restore, archive, unresolved) if t not in selected
            ]
        list_file = (
            _selection_list(pg_restore, archive, selected, target, Path(work)) if selected else None
        )
        roles = load_roles(store, stored, manifest) if plan.roles_to_create else None
        report.add(*roles_for_restore(target, roles, plan.roles_to_create, plan.owners_note))
        note(f"restoring into {plan.target}")
        jobs = req.jobs or default_jobs()
        # A rollback empties the target first, and restores into it as into a fresh database.
        report.add(*(req.rollback_of.empty_target(target) if req.rollback_of else ()))
        if plan.owners and list_file is None and (not req.clean or req.rollback_of):
            outcome = restore_archive(pg_restore, archive, target, jobs=jobs, owners=True)
        else:
            outcome = PgRestore(
                pg_restore,
                archive,
                target,
                jobs=jobs,
                list_file=list_file,
                clean=req.clean,
                keep_owners=plan.owners,
                rules=HARMLESS_RULES if plan.owners else OWNERSHIP_SKIPPED_RULES,
            ).run()
        report.timings["restore_seconds"] = outcome.seconds
        report.restore_messages = outcome.messages
        report.add(*restore_check(outcome))
    note("checking the restored tables against the manifest")
    t0 = time.monotonic()
    only = (
        None  # a rollback puts back the whole database: compare all of it
        if req.rollback_of
        else set(selected)
        if selected
        else (
            {(t.schema, t.name) for t in manifest.inventory.tables} if plan.target_tables else None
        )
    )
    with target.connect() as conn:
        report.add(
            *run_checks(manifest, conn, req.operator_checks, tables=only, owners=plan.owners)
        )
    report.timings["checks_seconds"] = round(time.monotonic() - t0, 3)
    result.report, result.restore_id = report.finish(), records.finished(report)
    return result
