"""Verify by restore: prove a stored backup restorable and equal to what the manifest recorded.

The steps are separate functions so the AWS workflow can run them in different places
(integrity in a Lambda, the restore in a Fargate task against a temporary RDS instance,
checks in a Lambda); `verify_backup` composes them for the CLI:

1. `check_integrity(store, stored)`: manifest well-formed and of a known version; archive size,
   streamed SHA-256 and encryption as the manifest says. Before any instance exists.
2. an instance (`instances.open_instance`) of the manifest's server major, always torn down.
3. `restore_into(...)`: a fresh database on it, parallel pg_restore, every message classified.
4. `run_checks(manifest, conn, operator_checks)` (checks.py).
5. `build`/`write_report` (report.py): verification.json beside the backup.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import zstandard
from botocore.exceptions import BotoCoreError, ClientError
from psycopg import sql

from .checks import FAIL, PASS, WARN, CheckResult, OperatorChecks, run_checks
from .errors import (
    BackproofError,
    IntegrityError,
    Interrupted,
    JobFailed,
    StoreUnavailable,
    UploadFailed,
)
from .instances import INSTANCE_KINDS, Instance, RestoreTarget, open_instance
from .manifest import Manifest
from .report import VerificationReport, render_report, write_report
from .restore import PgRestore, RestoreOutcome, add_data_offsets
from .tools import PgProgram, find_program

ProgressFn = Callable[[str], None]
DOWNLOAD_CHUNK = 1 << 20
WRITE_CHUNK = 1 << 20
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


# -- 1. integrity -----------------------------------------------------------------------------
class IntegrityFailure(IntegrityError):
    """The stored backup does not match its manifest; `results` names each failed check."""

    def __init__(self, message: str, results: list[CheckResult], manifest: Manifest | None) -> None:
        super().__init__(message)
        self.results = results
        self.manifest = manifest


def _key_id(value: str | None) -> str:
    """A KMS key ARN and a bare key id name the same key; compare by the id."""
    return (value or "").rsplit("/", 1)[-1]


def _encryption_check(expected: dict[str, str], found: dict[str, str]) -> CheckResult:
    want_type = expected.get("type") or "unknown"
    got_type = found.get("type") or "none"
    if got_type in ("none", "", None):
        return CheckResult("integrity.encryption", "archive", expected, found, FAIL,
                           "the archive is stored unencrypted")
    ok = want_type == got_type
    if ok and want_type.startswith("aws:kms") and expected.get("kms_key_id"):
        ok = _key_id(expected.get("kms_key_id")) == _key_id(found.get("kms_key_id"))
    return CheckResult("integrity.encryption", "archive", expected, found, PASS if ok else FAIL,
                       "" if ok else "the archive is not encrypted as the manifest recorded")


def integrity_checks(
    store: Any, stored: Any, *, archive_path: Path | None = None, decompress: bool = True,
    progress: ProgressFn = _quiet,
) -> tuple[Manifest | None, list[CheckResult]]:
    """All integrity checks. With `archive_path`, the archive is also written there: ready for
    pg_restore (decompressed), or as stored when `decompress` is False (then `prepare_archive`
    decompresses it later, e.g. while an instance starts)."""
    try:
        manifest = store.load_manifest(stored)
    except IntegrityError as exc:
        return None, [CheckResult("integrity.manifest", stored.manifest_key, "valid manifest",
                                  "invalid", FAIL, str(exc))]
    results = [CheckResult("integrity.manifest", stored.manifest_key, "valid manifest",
                           f"format version {manifest.format_version}", PASS)]
    info = manifest.archive
    if not info.key.startswith(stored.prefix):
        results.append(CheckResult("integrity.archive_key", "archive", stored.prefix + "…",
                                   info.key, FAIL, "the manifest points outside its backup"))
        return manifest, results
    try:
        head = store.head(info.key)
    except IntegrityError as exc:
        results.append(CheckResult("integrity.size", "archive", info.size, None, FAIL, str(exc)))
        return manifest, results
    results.append(CheckResult("integrity.size", "archive", info.size, head.size,
                               PASS if head.size == info.size else FAIL,
                               "" if head.size == info.size else "stored size differs"))
    results.append(_encryption_check(info.encryption, head.encryption))
    progress(f"reading {head.size / 2**20:.1f} MiB archive and checking its SHA-256")
    if archive_path is None or not decompress or info.compression == "none":
        results.append(_hash_archive(store, info, archive_path))
        if archive_path is not None and decompress and not any(r.failed for r in results):
            add_data_offsets(archive_path)
    else:
        stored_copy = archive_path.with_suffix(".stored")
        results.append(_hash_archive(store, info, stored_copy))
        if not any(r.failed for r in results):
            results.append(prepare_archive(manifest, stored_copy, archive_path))
        stored_copy.unlink(missing_ok=True)
    return manifest, results


def _hash_archive(store: Any, info: Any, copy_to: Path | None) -> CheckResult:
    """Stream the stored bytes once: SHA-256 and size, optionally copied to a local file."""
    digest = hashlib.sha256()
    size = 0
    out = copy_to.open("wb") if copy_to is not None else None
    try:
        for chunk in store.iter_chunks(info.key, chunk_size=DOWNLOAD_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if out is not None:
                out.write(chunk)
    except (BotoCoreError, ClientError) as exc:  # the store, not the backup, failed
        raise JobFailed(f"reading {info.key} from the store failed after {size} bytes: "
                        f"{exc}") from exc
    finally:
        if out is not None:
            out.close()
    sha = digest.hexdigest()
    return CheckResult("integrity.sha256", "archive", info.sha256, sha,
                       PASS if sha == info.sha256 else FAIL,
                       "" if sha == info.sha256 else
                       f"the stored archive ({size} bytes read) is not the one the manifest "
                       "describes")


def decompress_file(kind: str, source: Path, target: Path) -> int:
    """Undo the archive's outer compression file to file, holding little memory (highly
    compressible dumps expand a hundredfold). Returns the bytes written."""
    with source.open("rb") as fin, target.open("wb") as fout:
        if kind == "zstd":
            dctx = zstandard.ZstdDecompressor()
            _, written = dctx.copy_stream(fin, fout, read_size=DOWNLOAD_CHUNK,
                                          write_size=WRITE_CHUNK)
            return int(written)
        if kind == "gzip":
            dobj = zlib.decompressobj(31)
            written = 0
            while chunk := fin.read(DOWNLOAD_CHUNK):
                while chunk:
                    piece = dobj.decompress(chunk, WRITE_CHUNK)
                    fout.write(piece)
                    written += len(piece)
                    chunk = dobj.unconsumed_tail
            if not dobj.eof:
                raise ValueError("gzip stream ends early")
            return written
        raise ValueError(f"unknown compression {kind!r}")


def prepare_archive(manifest: Manifest, stored_copy: Path, archive_path: Path) -> CheckResult:
    """Decompress a stored copy into the file pg_restore reads; the stored copy is removed.
    A stream that does not decompress, or to another size than pg_dump wrote, fails here."""
    info = manifest.archive
    if info.compression == "none":
        if stored_copy != archive_path:
            stored_copy.replace(archive_path)
        raw = archive_path.stat().st_size
    else:
        try:
            raw = decompress_file(info.compression, stored_copy, archive_path)
        except (zstandard.ZstdError, zlib.error, ValueError, EOFError) as exc:
            return CheckResult("integrity.decompress", "archive", info.compression, "corrupt",
                               FAIL, f"{type(exc).__name__}: {exc}")
        finally:
            stored_copy.unlink(missing_ok=True)
    ok = raw == info.raw_size
    # Where each table's data starts, so parallel pg_restore seeks instead of scanning.
    blocks = add_data_offsets(archive_path) if ok else 0
    return CheckResult("integrity.raw_size", "archive", info.raw_size, raw, PASS if ok else FAIL,
                       f"data positions recorded for {blocks} blocks" if blocks else "")


def check_integrity(
    store: Any, stored: Any, *, archive_path: Path | None = None, progress: ProgressFn = _quiet,
) -> Manifest:
    """Manifest, size, streamed SHA-256 and encryption; raises IntegrityFailure on any mismatch."""
    manifest, results = integrity_checks(store, stored, archive_path=archive_path,
                                         progress=progress)
    failed = [r for r in results if r.failed]
    if failed or manifest is None:
        names = ", ".join(f"{r.check} (expected {r.expected}, found {r.found})" for r in failed)
        raise IntegrityFailure(f"backup {stored.backup_id} failed integrity checks: {names}",
                               results, manifest)
    return manifest


# -- 2./3. tools, instance, restore ------------------------------------------------------------
def dump_major(manifest: Manifest) -> int:
    version = str(manifest.tools.get("pg_dump", {}).get("version") or manifest.server_major)
    return int(version.split(".", maxsplit=1)[0])


def select_pg_restore(manifest: Manifest, extra_dirs: list[Path] | None = None) -> PgProgram:
    """A pg_restore that reads archives of the pg_dump that wrote this one."""
    major = dump_major(manifest)
    return find_program("pg_restore", min_major=major, prefer_major=major, extra_dirs=extra_dirs,
                        purpose=f"restoring an archive written by pg_dump {major}")


RESERVED_DATABASES = ("postgres", "template0", "template1", "rdsadmin")


def restore_database_name(manifest: Manifest) -> str:
    """The source's database name, unless the fresh server already has one by that name."""
    name = manifest.source_database
    return f"{name}_restored" if name in RESERVED_DATABASES else name


def create_database(admin: RestoreTarget, dbname: str) -> RestoreTarget:
    with psycopg.connect(**admin.connect_kwargs(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
            sql.Identifier(dbname)))
    return admin.with_dbname(dbname)


def restore_into(
    archive_path: Path, target: RestoreTarget, *, pg_restore: PgProgram, jobs: int | None = None,
    progress: ProgressFn = _quiet,
) -> RestoreOutcome:
    """Parallel pg_restore of the archive into the (empty) database `target` names."""
    jobs = jobs or os.cpu_count() or 1
    progress(f"restoring with pg_restore {pg_restore.version} ({jobs} jobs)")
    return PgRestore(pg_restore, archive_path, target, jobs=jobs).run()


def restore_check(outcome: RestoreOutcome) -> list[CheckResult]:
    fatal = outcome.fatal
    results = [CheckResult(
        "restore", "pg_restore", "no fatal messages",
        f"exit {outcome.exit_code}, {len(fatal)} fatal, {len(outcome.harmless)} harmless",
        PASS if outcome.ok else FAIL,
        "; ".join(m.text.replace("\n", " ")[:300] for m in fatal[:5]) or
        ("" if outcome.ok else "pg_restore failed without a message"),
    )]
    results += [CheckResult("restore", m.toc_entry or "pg_restore", "harmless",
                            m.text.splitlines()[-1][:200] if m.text else "", WARN, m.reason)
                for m in outcome.harmless]
    return results


# -- 5. everything together --------------------------------------------------------------------
@dataclass
class VerifyOptions:
    instance: str = "local"
    operator_checks: OperatorChecks | None = None
    jobs: int | None = None
    pg_bin_dir: Path | None = None
    instance_options: dict[str, Any] | None = None
    write: bool = True


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
    store: Any, backup_id: str, *, database: str | None = None,
    options: VerifyOptions | None = None, progress: ProgressFn = _quiet,
) -> VerificationReport:
    """Verify one stored backup by restoring it. Returns the report (written to the store
    unless `options.write` is False). Raises BadInput subclasses (exit 2) before anything is
    created: unknown id, unreadable store, missing tools."""
    opts = options or VerifyOptions()
    if opts.instance not in INSTANCE_KINDS:
        from .errors import BadInput

        raise BadInput(f"unknown instance kind {opts.instance!r}: use {', '.join(INSTANCE_KINDS)}")
    started = time.monotonic()
    progress("finding the backup")
    stored = store.find(backup_id, database)
    report = VerificationReport(stored.backup_id, stored.database)
    clock = _Clock(report)
    extra_dirs = [opts.pg_bin_dir] if opts.pg_bin_dir else None
    try:
        early: Manifest | None = store.load_manifest(stored)
    except IntegrityError:
        early = None  # integrity_checks records why
    # Tools and instance kind are settled before anything is downloaded or created (exit 2).
    chosen = preflight(early, opts, extra_dirs) if early is not None else None
    with _workdir() as work:
        stored_copy = work / "archive.stored"
        with clock.step("integrity"):
            manifest, results = integrity_checks(store, stored, archive_path=stored_copy,
                                                 decompress=False, progress=progress)
        report.add(*results)
        if manifest is not None:
            report.snapshot_taken_at = str(manifest.snapshot.get("taken_at"))
            _use_manifest_key(store, manifest)
        if manifest is not None and chosen is not None and not report.failures:
            _restore_and_check(manifest, (stored_copy, work / "archive.dump"), report,
                               opts=opts, chosen=chosen, progress=progress)
    report.timings["total_seconds"] = round(time.monotonic() - started, 3)
    report.finish()
    if opts.write:
        progress("writing verification.json")
        _write_or_record(store, stored, report)
    return report


def _write_or_record(store: Any, stored: Any, report: VerificationReport) -> None:
    """Unrecorded evidence is no evidence: a failed write fails the verification, but the
    result is still returned (and printed) rather than lost."""
    try:
        write_report(store, stored, report)
    except (UploadFailed, StoreUnavailable) as exc:
        report.error = f"verification.json could not be written: {exc}"


def preflight(manifest: Manifest, opts: VerifyOptions,
              extra_dirs: list[Path] | None) -> tuple[PgProgram, Instance]:
    """Tools and instance chosen before anything is created (ToolNotFound: exit 2)."""
    pg_restore = select_pg_restore(manifest, extra_dirs)
    instance_options = dict(opts.instance_options or {})
    if opts.instance == "local":
        instance_options.setdefault("settings", LOCAL_RESTORE_SETTINGS)
        instance_options.setdefault("extra_dirs", extra_dirs)
    else:
        instance_options.setdefault("backup_id", manifest.backup_id)
    instance = open_instance(opts.instance, major=manifest.server_major, **instance_options)
    return pg_restore, instance


def restore_and_check(
    manifest: Manifest, archive: Path, admin: RestoreTarget, report: VerificationReport, *,
    pg_restore: PgProgram, operator_checks: OperatorChecks | None = None,
    jobs: int | None = None, progress: ProgressFn = _quiet,
) -> None:
    """On a fresh server (`admin` names its maintenance database): create the database,
    pg_restore into it, compare with the manifest. Results and timings go into `report`."""
    clock = _Clock(report)
    report.tools["pg_restore"] = {"version": pg_restore.version, "path": str(pg_restore.path)}
    report.tools["pg_dump"] = manifest.tools.get("pg_dump")
    report.operator_checks = (len(operator_checks.assertions) + len(operator_checks.freshness)
                              ) if operator_checks else 0
    with clock.step("restore"):
        target = create_database(admin, restore_database_name(manifest))
        outcome = restore_into(archive, target, pg_restore=pg_restore, jobs=jobs,
                               progress=progress)
    report.restore_messages = outcome.messages
    report.add(*restore_check(outcome))
    progress("comparing the restore with the manifest")
    with clock.step("checks"), psycopg.connect(**target.connect_kwargs()) as conn:
        report.add(*run_checks(manifest, conn, operator_checks, progress=progress))


def _record_error(report: VerificationReport, where: str, exc: BaseException) -> None:
    report.error = f"{type(exc).__name__}: {exc}".strip()
    report.add(CheckResult("instance", where, "restore and checks completed", "error", FAIL,
                           report.error))


class _Preparation(threading.Thread):
    """Decompresses the verified stored copy while the instance starts (both take seconds)."""

    def __init__(self, manifest: Manifest, stored_copy: Path, archive: Path) -> None:
        super().__init__(name="prepare-archive", daemon=True)
        self.args_ = (manifest, stored_copy, archive)
        self.result: CheckResult | None = None
        self.error: BaseException | None = None
        self.seconds = 0.0

    def run(self) -> None:
        started = time.monotonic()
        try:
            self.result = prepare_archive(*self.args_)
        except BaseException as exc:  # reported by the caller
            self.error = exc
        self.seconds = round(time.monotonic() - started, 3)

    def outcome(self) -> CheckResult:
        self.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def _restore_and_check(
    manifest: Manifest, files: tuple[Path, Path], report: VerificationReport, *,
    opts: VerifyOptions, chosen: tuple[PgProgram, Instance], progress: ProgressFn,
) -> None:
    pg_restore, instance = chosen
    stored_copy, archive = files
    clock = _Clock(report)
    preparation = _Preparation(manifest, stored_copy, archive)
    try:
        progress(f"starting a {opts.instance} PostgreSQL {manifest.server_major} instance")
        preparation.start()
        with clock.step("instance"):
            admin = instance.__enter__()
        try:
            report.instance = instance.describe()
            prepared = preparation.outcome()
            report.timings["decompress_seconds"] = preparation.seconds
            report.add(prepared)
            if prepared.failed:
                return
            restore_and_check(manifest, archive, admin, report, pg_restore=pg_restore,
                              operator_checks=opts.operator_checks, jobs=opts.jobs,
                              progress=progress)
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
    store: Any, stored: Any, admin: RestoreTarget, *, operator_checks: OperatorChecks | None = None,
    jobs: int | None = None, instance_info: dict[str, Any] | None = None,
    pg_bin_dir: Path | None = None, write: bool = True, progress: ProgressFn = _quiet,
) -> VerificationReport:
    """Integrity, restore and checks against a server someone else provisioned and will delete
    (the AWS workflow's restore task, with the temporary RDS instance it was handed)."""
    started = time.monotonic()
    report = VerificationReport(stored.backup_id, stored.database,
                                instance=dict(instance_info or {"kind": "external"}))
    clock = _Clock(report)
    try:  # the right pg_restore must exist before anything is downloaded (exit 2)
        select_pg_restore(store.load_manifest(stored), [pg_bin_dir] if pg_bin_dir else None)
    except IntegrityError:
        pass  # recorded by integrity_checks below
    with _workdir() as work:
        archive = work / "archive.dump"
        with clock.step("integrity"):
            manifest, results = integrity_checks(store, stored, archive_path=archive,
                                                 progress=progress)
        report.add(*results)
        if manifest is not None and not report.failures:
            report.snapshot_taken_at = str(manifest.snapshot.get("taken_at"))
            _use_manifest_key(store, manifest)
            pg_restore = select_pg_restore(manifest, [pg_bin_dir] if pg_bin_dir else None)
            try:
                restore_and_check(manifest, archive, admin, report, pg_restore=pg_restore,
                                  operator_checks=operator_checks, jobs=jobs, progress=progress)
            except (BackproofError, psycopg.Error) as exc:
                if isinstance(exc, Interrupted):
                    raise
                _record_error(report, report.instance.get("kind", "external"), exc)
    report.timings["total_seconds"] = round(time.monotonic() - started, 3)
    report.finish()
    if write:
        _write_or_record(store, stored, report)
    return report


def _use_manifest_key(store: Any, manifest: Manifest) -> None:
    """Write the report with the key that encrypts the backup itself."""
    key = manifest.archive.encryption.get("kms_key_id")
    if key and not getattr(store, "kms_key_id", None):
        store.kms_key_id = key
        store._encryption = None


# -- CLI ----------------------------------------------------------------------------------------
def add_operator_check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--assert", dest="asserts", action="append", default=[], metavar="SQL",
                   help="SQL that must return true on the restored database (repeatable)")
    p.add_argument("--fresh", action="append", default=[], metavar="TABLE.COLUMN=AGE",
                   help="newest value no older than AGE (e.g. 26h) at the snapshot time")
    p.add_argument("--checks-file", metavar="PATH",
                   help="TOML or JSON with 'assert' and 'fresh' lists")


def add_verify_parser(sub: Any) -> None:
    from .cli import add_output_args, add_store_args

    p = sub.add_parser("verify", help="prove a backup restorable: restore it and compare")
    p.add_argument("backup_id", metavar="BACKUP_ID|latest")
    add_store_args(p)
    p.add_argument("--database-name", help="the database the backup is filed under")
    p.add_argument("--instance", choices=INSTANCE_KINDS, default="local",
                   help="where to restore: a local ephemeral cluster or a temporary RDS instance")
    add_operator_check_args(p)
    p.add_argument("--jobs", type=int, default=None, help="pg_restore jobs (default: cores)")
    p.add_argument("--pg-bin-dir", type=Path, help="directory holding pg_restore/initdb to prefer")
    p.add_argument("--no-write", action="store_true", help="do not write verification.json")
    rds = p.add_argument_group("RDS instance (--instance rds)")
    rds.add_argument("--rds-subnet-group", default=os.environ.get("BACKPROOF_RDS_SUBNET_GROUP"))
    rds.add_argument("--rds-security-group", action="append", default=[
        s for s in os.environ.get("BACKPROOF_RDS_SECURITY_GROUPS", "").split(",") if s])
    rds.add_argument("--rds-instance-class", default=os.environ.get(
        "BACKPROOF_RDS_INSTANCE_CLASS", "db.t4g.medium"))
    rds.add_argument("--rds-kms-key-id", default=os.environ.get("BACKPROOF_RDS_KMS_KEY_ID"))
    p.add_argument("--target-url", metavar="postgresql://USER@HOST:PORT/postgres",
                   help="restore into a server you provide and remove yourself, instead of "
                        "creating an instance (password from PGPASSWORD or a passfile)")
    add_output_args(p)
    p.set_defaults(handler=cmd_verify)


def target_from_url(url: str) -> RestoreTarget:
    """A server given as a URL; the password comes from the URL, PGPASSWORD or a passfile."""
    from .source import SourceSpec

    params = SourceSpec.from_url(url).params
    return RestoreTarget(
        host=str(params.get("host") or os.environ.get("PGHOST") or "localhost"),
        port=int(params.get("port") or os.environ.get("PGPORT") or 5432),
        user=str(params.get("user") or os.environ.get("PGUSER") or "postgres"),
        dbname=str(params.get("dbname")), password=params.get("password") or
        os.environ.get("PGPASSWORD"), sslmode=params.get("sslmode"),
    )


def rds_options(args: argparse.Namespace) -> dict[str, Any]:
    from .instances.rds import RdsSettings

    return {"settings": RdsSettings(
        subnet_group=args.rds_subnet_group or "", security_group_ids=args.rds_security_group,
        instance_class=args.rds_instance_class, kms_key_id=args.rds_kms_key_id)}


def cmd_verify(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .store import BackupStore

    checks = OperatorChecks.from_cli(args.asserts, args.fresh, args.checks_file)
    store = BackupStore.from_url(args.store)
    options = VerifyOptions(
        instance=args.instance, operator_checks=checks, jobs=args.jobs, pg_bin_dir=args.pg_bin_dir,
        instance_options=rds_options(args) if args.instance == "rds" else None,
        write=not args.no_write,
    )
    with StepProgress(enabled=not args.json and sys.stderr.isatty()) as status:
        if args.target_url:
            admin = target_from_url(args.target_url)
            report = verify_on_target(
                store, store.find(args.backup_id, args.database_name), admin,
                operator_checks=checks, jobs=args.jobs, pg_bin_dir=args.pg_bin_dir,
                instance_info={"kind": "given", "target": admin.display},
                write=not args.no_write, progress=status.update)
        else:
            report = verify_backup(store, args.backup_id, database=args.database_name,
                                   options=options, progress=status.update)
    if args.json:
        import json

        print(json.dumps(report.summary(), default=str))
    else:
        render_report(report, Console(highlight=False))
    return 0 if report.passed else JobFailed.exit_code


class StepProgress:
    """A spinner with the current step on stderr, only when a person is watching."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> StepProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                      TimeElapsedColumn(), console=Console(stderr=True),
                                      transient=True)
            self._progress.start()
            self._task = self._progress.add_task("starting")
        return self

    def update(self, message: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=message)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
