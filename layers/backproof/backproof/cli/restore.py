"""`backproof restore`: restore a backup into a database the operator names."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from ..errors import EXIT_FAILED, EXIT_OK
from ..jobs.restore import RestoreRequest, restore_backup
from ..store import open_store
from .args import (
    Subparsers,
    add_operator_check_args,
    add_output_args,
    add_store_args,
    add_tls_args,
    tls_params,
    watching,
)
from .progress import StepProgress
from .render import render_report
from .verify import operator_checks


def register(sub: Subparsers) -> None:
    p = sub.add_parser("restore", help="restore a backup into a database you name")
    p.add_argument("backup_id", metavar="BACKUP_ID|latest")
    add_store_args(p)
    p.add_argument("--database-name", help="the database the backup is filed under")
    p.add_argument(
        "--target-url",
        required=True,
        help="postgresql://USER@HOST:PORT/DBNAME of an existing database (password "
        "from PGPASSWORD or a passfile)",
    )
    p.add_argument(
        "--table",
        action="append",
        default=[],
        metavar="[SCHEMA.]TABLE",
        help="restore only this table with its indexes and constraints (repeatable)",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would happen; touch nothing")
    p.add_argument(
        "--clean",
        action="store_true",
        help="drop and re-create the backup's objects in a non-empty target",
    )
    p.add_argument("--confirm", metavar="DBNAME", help="the target database's name, typed back")
    owners = p.add_mutually_exclusive_group()
    owners.add_argument(
        "--keep-owners",
        action="store_true",
        default=None,
        help="restore ownership and grants (the default when the backup recorded its roles; "
        "with an older backup, the roles must exist on the target)",
    )
    owners.add_argument(
        "--no-owners",
        dest="keep_owners",
        action="store_false",
        help="restore without ownership and grants (objects owned by the restoring role)",
    )
    p.add_argument(
        "--create-roles",
        action="store_true",
        help="create the roles the target lacks first (NOLOGIN, without passwords)",
    )
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--pg-bin-dir", type=Path)
    add_operator_check_args(p)
    add_tls_args(p, url_flag="--target-url")
    add_output_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    req = RestoreRequest(
        backup_id=args.backup_id,
        target_url=args.target_url,
        target_tls=tls_params(args),
        database=args.database_name,
        tables=args.table,
        dry_run=args.dry_run,
        clean=args.clean,
        confirm=args.confirm,
        jobs=args.jobs,
        keep_owners=args.keep_owners,
        create_roles=args.create_roles,
        pg_bin_dir=args.pg_bin_dir,
        operator_checks=operator_checks(args),
    )
    with StepProgress(watching(args)) as status:
        result = restore_backup(store, req, progress=status.update)
    plan = result.plan
    if args.json:
        out: dict[str, Any] = {
            "dry_run": req.dry_run,
            "plan": asdict(plan),
            "safety_backup_id": result.safety_backup_id,
        }
        if result.report is not None:
            out.update(result.report.summary())
        print(json.dumps(out, default=str))
    else:
        print("dry run, nothing touched:" if req.dry_run else "restore plan:")
        print("\n".join(f"  {line}" for line in plan.lines()))
        if result.safety_backup_id:
            print(f"safety backup: {result.safety_backup_id}")
        if result.report is not None:
            render_report(result.report, Console(highlight=False))
    if result.report is None:
        return EXIT_OK
    return EXIT_OK if result.report.passed else EXIT_FAILED
