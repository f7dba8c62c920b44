"""`backproof backup`: take a consistent backup of one database."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import EXIT_FAILED, EXIT_OK, BadInput
from ..jobs import default_jobs
from ..jobs.backup import BackupRequest, run_backup
from ..jobs.dump_workers import SPLIT_MIN_BYTES
from ..jobs.instance import Selection, backup_instance
from ..model.manifest import COMPRESSIONS, TIERS
from ..model.operator import parse_duration
from ..pg.target import Target
from ..store import open_store
from .args import Subparsers, add_output_args, add_store_args, add_tls_args, tls_params, watching
from .progress import StepProgress, backup_messages
from .signing import add_signing_args, signing_from_args
from .wait_verified import add_wait_args, check_wait_args, wait_verified


def register(sub: Subparsers) -> None:
    p = sub.add_parser("backup", help="take a consistent backup of one database")
    p.add_argument(
        "--source-url",
        default=os.environ.get("BACKPROOF_SOURCE_URL"),
        help="postgresql://USER@HOST:PORT/DBNAME (password from PGPASSWORD or a "
        "passfile rather than the URL)",
    )
    add_store_args(p, kms=True)
    p.add_argument(
        "--object-lock",
        default=os.environ.get("BACKPROOF_OBJECT_LOCK"),
        metavar="TIER=MODE:DAYS,...",
        help="S3 Object Lock per tier for every object written, e.g. "
        "daily=GOVERNANCE:7,monthly=COMPLIANCE:365 (the bucket needs Object Lock enabled)",
    )
    p.add_argument(
        "--database-name",
        help="name the backup is filed under (default: the source's database name)",
    )
    p.add_argument(
        "--databases",
        metavar="PATTERN",
        help="back up every database of the source's instance whose name matches (e.g. '*' "
        "or 'app_*'), each filed under its own name (prefixed by --database-name and a dot "
        "when given); the --source-url database is the one connected to, to list them",
    )
    p.add_argument(
        "--exclude-databases",
        metavar="PATTERN",
        action="append",
        default=[],
        help="with --databases: skip databases matching this (repeatable); templates and "
        "providers' own databases (rdsadmin, ...) are always skipped",
    )
    p.add_argument("--tier", choices=TIERS, default="manual")
    p.add_argument("--compression", choices=COMPRESSIONS, default="zstd")
    p.add_argument(
        "--no-fingerprints",
        action="store_true",
        help="record row counts only (faster; verification then cannot compare content)",
    )
    p.add_argument("--pg-bin-dir", type=Path, help="directory holding pg_dump to prefer")
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="pg_dump workers sharing the dump, and connections sharing the fingerprints "
        "(default: the task's vCPUs, else this machine's cores); a database under "
        f"{SPLIT_MIN_BYTES >> 20} MiB of table data is dumped as one archive",
    )
    p.add_argument(
        "--lock-wait-timeout",
        default="10m",
        metavar="DURATION",
        help="how long the dump may wait for a table another session locks (e.g. a migration) "
        "before it gives up naming that session; 0 waits forever (default 10m)",
    )
    p.add_argument(
        "--snapshot-idle-timeout",
        default="0",
        metavar="DURATION",
        help="let the source end the backup's snapshot session when it is left idle this long "
        "(a hung task must not hold back vacuum); longer than the longest dump; 0: off",
    )
    add_tls_args(p, url_flag="--source-url")
    add_signing_args(p, check=False)
    add_wait_args(p)
    add_output_args(p)
    p.set_defaults(handler=run)


def lock_wait_seconds(text: str) -> int:
    """`10m`, `90s`, `0` (no limit) -> seconds; BadInput otherwise."""
    if text.strip() == "0":
        return 0
    return max(1, int(parse_duration(text).total_seconds()))


def run(args: argparse.Namespace) -> int:
    check_wait_args(args)  # before anything is backed up
    source = Target.from_url(args.source_url or "").with_params(**tls_params(args))
    store = open_store(args.store, kms_key_id=args.kms_key_id, object_lock=args.object_lock or "")
    request = BackupRequest(
        source=source,
        store=store,
        database_name=(args.database_name if args.databases is None else None) or source.dbname,
        tier=args.tier,
        compression=args.compression,
        fingerprints=not args.no_fingerprints,
        pg_bin_dir=args.pg_bin_dir,
        jobs=args.jobs if args.jobs is not None else default_jobs(),
        lock_wait_timeout_s=lock_wait_seconds(args.lock_wait_timeout),
        snapshot_idle_timeout_s=lock_wait_seconds(args.snapshot_idle_timeout),
        signing=signing_from_args(args),
    )
    if args.databases is not None:
        return _run_instance(args, request)
    with StepProgress(watching(args), first="connecting to the source") as progress:
        result = run_backup(request, progress=backup_messages(progress.update))
    summary = result.summary()
    if args.wait_verified:
        return wait_verified(args, store, request.database_name, summary)
    if args.json:
        print(json.dumps(summary))
    else:
        print(summary["backup_id"])
        print(
            f"  {summary['tables']} tables, {summary['rows']} rows, {summary['size']} bytes "
            f"stored in {summary['seconds']} s; manifest {store.location(summary['manifest_key'])}",
            file=sys.stderr,
        )
    return EXIT_OK


def _run_instance(args: argparse.Namespace, request: BackupRequest) -> int:
    """`--databases`: every matching database of the instance, one after another."""
    if args.wait_verified:
        raise BadInput("--wait-verified waits for one backup: leave it out with --databases")
    selection = Selection(args.databases, tuple(args.exclude_databases))
    with StepProgress(watching(args), first="listing the instance's databases") as progress:
        done = backup_instance(
            request,
            selection,
            args.database_name,
            progress=lambda _name: backup_messages(progress.update),
        )
    summary = done.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        for item in summary["databases"]:
            state = item.get("backup_id") or f"FAILED {item['error']}: {item['message']}"
            print(f"{item['database']}: {state}")
    return EXIT_FAILED if done.failed else EXIT_OK
