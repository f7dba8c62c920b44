"""Verify by restore: prove a stored backup restorable and equal to what the manifest recorded.

The steps are separate functions so the AWS workflow can run them in different places
(integrity in a Lambda, the restore in a Fargate task against a temporary RDS instance,
checks in a Lambda); `verify_backup` composes them for the CLI:

1. integrity (jobs/integrity.py): manifest well-formed and of a known version; archive size,
   streamed SHA-256 and encryption as the manifest says. Before any instance exists.
2. an instance (`instances.open_instance`) of the manifest's server major, always torn down.
3. `restore_into(...)`: a fresh database on it, parallel pg_restore, every message classified.
4. `run_checks(manifest, conn, operator_checks)` (jobs/checks.py).
5. `write_report`: the run's evidence beside the backup (`verifications/<run-id>.json`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from ..errors import (
    BackproofError,
    BadInput,
    IntegrityError,
    Interrupted,
    SigningFailed,
    StoreUnavailable,
    UploadFailed,
)
from ..instances import INSTANCE_KINDS, Instance, open_instance
from ..instances.local import RDS_MASTER
from ..model.checks import FAIL, CheckResult
from ..model.manifest import Manifest
from ..model.operator import OperatorChecks
from ..model.recovery import RecoveryTargets
from ..model.report import VerificationReport
from ..model.roles import RoleSet
from ..pg.database import RESERVED_DATABASES, create_database
from ..pg.programs import PgProgram, find_program
from ..pg.restore import RestoreOutcome, restore_archive
from ..pg.target import Target
from ..signing import Signing
from ..store import BackupStore, StoredBackup
from . import default_jobs
from .checks import restore_check, run_checks
from .integrity import Preparation, integrity_checks
from .ownership import load_roles, prepare_roles
from .signatures import write_report
from .space import room_for

ProgressFn = Callable[[str], None]
# Settings for a throwaway restore target: durability buys nothing on a server that is deleted
# minutes later, and WAL-minimal bulk loads are what make a restore fast.
LOCAL_RESTORE_SETTINGS = {
    "autovacuum": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "maintenance_work_mem": "256MB",
    "checkpoint_timeout": "30min",
    "max_wal_size": "8GB",
}


def _quiet(_message: str) -> None:
    return None


def dump_major(manifest: Manifest) -> int:
    version = str(manifest.tools.get("pg_dump", {}).get("version") or manifest.server_major)
    return int(version.split(".", maxsplit=1)[0])


def select_pg_restore(manifest: Manifest, extra_dirs: list[Path] | None = None) -> PgProgram:
    """A pg_restore that reads archives of the pg_dump that wrote this one."""
    major = dump_major(manifest)
    return find_program(
        "pg_restore",
        min_major=major,
        prefer_major=major,
        extra_dirs=extra_dirs,
        purpose=f"restoring an archive written by pg_dump {major}",
    )


def restore_database_name(manifest: Manifest) -> str:
    """The source's database name, unless the fresh server already has one by that name."""
    name = manifest.source_database
    return f"{name}_restored" if name in RESERVED_DATABASES else name


def restore_into(
    archive_path: Path,
    target: Target,
    *,
    pg_restore: PgProgram,
    jobs: int | None = None,
    progress: ProgressFn = _quiet,
    owners: bool = False,
) -> RestoreOutcome:
    """Parallel pg_restore of the archive into the (empty) database `target` names."""
    jobs = jobs or default_jobs()
    progress(f"restoring with pg_restore {pg_restore.version} ({jobs} jobs)")
    return restore_archive(pg_restore, archive_path, target, jobs=jobs, owners=owners)


@dataclass
class VerifyOptions:
    instance: str = "local"
    operator_checks: OperatorChecks | None = None
    jobs: int | None = None
    pg_bin_dir: Path | None = None
    instance_options: dict[str, Any] | None = None
    write: bool = True
    restore_as: str = RDS_MASTER  # as RDS does; "superuser" too on local instances
    signing: Signing | None = None  # checks the manifest's signature, signs the evidence
    targets: RecoveryTargets | None = None  # RTO/RPO the run is held against


@contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="backproof-verify-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class _Clock:
    def __init__(self, report: VerificationReport) -> None:
        self.report = report

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.report.timings[f"{name}_seconds"] = round(time.monotonic() - started, 3)


def verify_backup(
    store: BackupStore,
    backup_id: str,
    *,
    database: str | None = None,
    options: VerifyOptions | None = None,
    progress: ProgressFn = _quiet,
) -> VerificationReport:
    """Verify one stored backup by restoring it. Returns the report (written to the store
    unless `options.write` is False). Raises BadInput subclasses (exit 2) before anything is
    created: unknown id, unreadable store, missing tools."""
    opts = options or VerifyOptions()
    if opts.instance not in INSTANCE_KINDS:
        raise BadInput(f"unknown instance kind {opts.instance!r}: use {', '.join(INSTANCE_KINDS)}")
    started = time.monotonic()
    progress("finding the backup")
    stored = store.find(backup_id, database)
    report = VerificationReport(stored.backup_id, stored.database, targets=opts.targets)
    clock = _Clock(report)
    extra_dirs = [opts.pg_bin_dir] if opts.pg_bin_dir else None
    try:
        early: Manifest | None = store.load_manifest(stored)
    except IntegrityError:
        early = None  # integrity_checks records why
    # Tools and instance kind are settled before anything is downloaded or created (exit 2).
    chosen = preflight(early, opts, extra_dirs) if early is not None else None
    if (
        early is not None
        and chosen is not None
        and not room_for(early, opts.instance, chosen[1], report)
    ):
        chosen = None  # could not verify here: nothing downloaded, nothing created
    with _workdir() as work:
        stored_copy = work / "archive.stored"
        with clock.step("integrity"):
            manifest, results = integrity_checks(
                store,
                stored,
                archive_path=stored_copy,
                decompress=False,
                progress=progress,
                signing=opts.signing,
            )
        report.add(*results)
        if manifest is not None:
            report.snapshot_taken_at = str(manifest.snapshot.get("taken_at"))
            store.adopt_encryption_of(manifest)
        if manifest is not None and chosen is not None and not report.failures:
            _restore_and_check(
                manifest,
                (stored_copy, work / "archive.dump"),
                report,
                opts=opts,
                chosen=chosen,
                progress=progress,
                roles=load_roles(store, stored, manifest),
            )
    report.timings["total_seconds"] = round(time.monotonic() - started, 3)
    report.finish()
    if opts.write:
        progress("writing the verification evidence")
        _write_or_record(store, stored, report, opts.signing)
    return report


def _write_or_record(
    store: BackupStore, stored: StoredBackup, report: VerificationReport, signing: Signing | None
) -> None:
    """Unrecorded (or, with signing configured, unsigned) evidence is no evidence: a failed
    write fails the verification, but the result is still returned (and printed)."""
    try:
        write_report(store, stored, report, signing)
    except (UploadFailed, StoreUnavailable, SigningFailed) as exc:
        report.error = f"the verification evidence could not be written: {exc}"


def preflight(
    manifest: Manifest, opts: VerifyOptions, extra_dirs: list[Path] | None
) -> tuple[PgProgram, Instance]:
    """Tools and instance chosen before anything is created (ToolNotFound: exit 2)."""
    pg_restore = select_pg_restore(manifest, extra_dirs)
    instance_options = dict(opts.instance_options or {})
    if opts.instance == "local":
        instance_options.setdefault("settings", LOCAL_RESTORE_SETTINGS)
        instance_options.setdefault("extra_dirs", extra_dirs)
        instance_options.setdefault("restore_as", opts.restore_as)
    else:
        if opts.restore_as != RDS_MASTER:
            raise BadInput(f"an RDS instance restores as its master user, not {opts.restore_as}")
        instance_options.setdefault("backup_id", manifest.backup_id)
    instance = open_instance(opts.instance, major=manifest.server_major, **instance_options)
    return pg_restore, instance


def restore_and_check(
    manifest: Manifest,
    archive: Path,
    admin: Target,
    report: VerificationReport,
    *,
    pg_restore: PgProgram,
    operator_checks: OperatorChecks | None = None,
    jobs: int | None = None,
    progress: ProgressFn = _quiet,
    roles: RoleSet | None = None,
) -> None:
    """On a fresh server (`admin` names its maintenance database): create the database,
    pg_restore into it, compare with the manifest. Results and timings go into `report`."""
    clock = _Clock(report)
    report.tools["pg_restore"] = {"version": pg_restore.version, "path": str(pg_restore.path)}
    report.tools["pg_dump"] = manifest.tools.get("pg_dump")
    report.operator_checks = (
        (len(operator_checks.assertions) + len(operator_checks.freshness)) if operator_checks else 0
    )
    with clock.step("restore"):
        target = create_database(admin, restore_database_name(manifest))
        owners = prepare_roles(admin, manifest, roles, report)  # then keep owners and grants
        outcome = restore_into(
            archive, target, pg_restore=pg_restore, jobs=jobs, progress=progress, owners=owners
        )
    report.restore_messages = outcome.messages
    report.add(*restore_check(outcome))
    progress("comparing the restore with the manifest")
    with clock.step("checks"), target.connect() as conn:
        report.add(*run_checks(manifest, conn, operator_checks, progress=progress, owners=owners))


def _record_error(report: VerificationReport, where: str, exc: BaseException) -> None:
    report.error = f"{type(exc).__name__}: {exc}".strip()
    report.add(
        CheckResult("instance", where, "restore and checks completed", "error", FAIL, report.error)
    )


def _restore_and_check(
    manifest: Manifest,
    files: tuple[Path, Path],
    report: VerificationReport,
    *,
    opts: VerifyOptions,
    chosen: tuple[PgProgram, Instance],
    progress: ProgressFn,
    roles: RoleSet | None,
) -> None:
    pg_restore, instance = chosen
    stored_copy, archive = files
    clock = _Clock(report)
    preparation = Preparation(manifest, stored_copy, archive)
    try:
        progress(f"starting a {opts.instance} PostgreSQL {manifest.server_major} instance")
        preparation.start()
        with clock.step("instance"):
            admin = instance.__enter__()
        try:
            report.instance = instance.describe()
            prepared = preparation.outcome()
            report.timings["decompress_seconds"] = preparation.seconds
            report.add(*prepared)
            if any(r.failed for r in prepared):
                return
            restore_and_check(
                manifest,
                archive,
                admin,
                report,
                pg_restore=pg_restore,
                operator_checks=opts.operator_checks,
                jobs=opts.jobs,
                progress=progress,
                roles=roles,
            )
        finally:
            progress("tearing the instance down")
            with clock.step("teardown"):
                instance.__exit__(None, None, None)
    except Interrupted:
        raise
    except (BackproofError, psycopg.Error) as exc:
        preparation.join()
        _record_error(report, opts.instance, exc)


def verify_on_target(
    store: BackupStore,
    stored: StoredBackup,
    admin: Target,
    *,
    operator_checks: OperatorChecks | None = None,
    jobs: int | None = None,
    instance_info: dict[str, Any] | None = None,
    pg_bin_dir: Path | None = None,
    write: bool = True,
    progress: ProgressFn = _quiet,
    signing: Signing | None = None,
    targets: RecoveryTargets | None = None,
) -> VerificationReport:
    """Integrity, restore and checks against a server someone else provisioned and will delete
    (the AWS workflow's restore task, with the temporary RDS instance it was handed)."""
    started = time.monotonic()
    report = VerificationReport(
        stored.backup_id, stored.database, instance=dict(instance_info or {"kind": "external"})
    )
    report.targets = targets
    clock = _Clock(report)
    try:  # the right pg_restore must exist before anything is downloaded (exit 2)
        select_pg_restore(store.load_manifest(stored), [pg_bin_dir] if pg_bin_dir else None)
    except IntegrityError:
        pass  # recorded by integrity_checks below
    with _workdir() as work:
        archive = work / "archive.dump"
        with clock.step("integrity"):
            manifest, results = integrity_checks(
                store, stored, archive_path=archive, progress=progress, signing=signing
            )
        report.add(*results)
        if manifest is not None and not report.failures:
            report.snapshot_taken_at = str(manifest.snapshot.get("taken_at"))
            store.adopt_encryption_of(manifest)
            pg_restore = select_pg_restore(manifest, [pg_bin_dir] if pg_bin_dir else None)
            try:
                restore_and_check(
                    manifest,
                    archive,
                    admin,
                    report,
                    pg_restore=pg_restore,
                    operator_checks=operator_checks,
                    jobs=jobs,
                    progress=progress,
                    roles=load_roles(store, stored, manifest),
                )
            except (BackproofError, psycopg.Error) as exc:
                if isinstance(exc, Interrupted):
                    raise
                _record_error(report, report.instance.get("kind", "external"), exc)
    report.timings["total_seconds"] = round(time.monotonic() - started, 3)
    report.finish()
    if write:
        _write_or_record(store, stored, report, signing)
    return report
