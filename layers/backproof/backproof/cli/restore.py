"""`backproof restore`: restore a backup into a database the operator names."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from ..errors import EXIT_FAILED, EXIT_OK, BackproofError, BadInput, redact
from ..jobs.restore import RestoreRequest, RestoreResult, restore_backup
from ..jobs.rollback import RollbackRequest, rollback_restore
from ..pg.target import Target
from ..store import BackupStore, open_store
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
from .signing import add_signing_args, signing_from_args
from .verify import operator_checks


def register(sub: Subparsers) -> None:
    p = sub.add_parser("restore", help="restore a backup into a database you name")
    p.add_argument("backup_id", metavar="BACKUP_ID|latest", nargs="?")
    p.add_argument(
        "--rollback",
        metavar="RESTORE_ID",
        help="instead: put the target of that earlier restore back as it was before it, from "
        "the safety backup it took (needs --clean --confirm DBNAME like any restore over data)",
    )
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
    add_signing_args(p)
    add_output_args(p)
    p.set_defaults(handler=run)


def _rollback_request(args: argparse.Namespace) -> RollbackRequest:
    if args.backup_id or args.table or args.database_name:
        raise BadInput("--rollback restores the safety backup its restore took: name no backup")
    return RollbackRequest(
        restore_id=args.rollback,
        target_url=args.target_url,
        target_tls=tls_params(args),
        dry_run=args.dry_run,
        clean=args.clean,
        confirm=args.confirm,
        jobs=args.jobs,
        keep_owners=args.keep_owners,
        create_roles=args.create_roles,
        pg_bin_dir=args.pg_bin_dir,
    )


def _run_job(args: argparse.Namespace, store: BackupStore, req: RestoreRequest) -> RestoreResult:
    """The restore (or rollback); a failure after its record exists names how to roll back."""
    recorded: list[str] = []
    try:
        with StepProgress(watching(args)) as status:
            if args.rollback:
                return rollback_restore(
                    store, _rollback_request(args), status.update, recorded.append
                )
            req.on_recorded = recorded.append
            return restore_backup(store, req, progress=status.update)
    except BackproofError as exc:
        if recorded:
            exc.add_note(f"restore id {recorded[0]}: {rollback_hint(recorded[0], args)}")
        raise


def rollback_hint(restore_id: str, args: argparse.Namespace) -> str:
    dbname = Target.from_url(args.target_url, what="target", flag="--target-url").dbname
    return redact(
        f"to put the target back as it was before: backproof restore --rollback {restore_id} "
        f"--store {args.store} --target-url {args.target_url} --clean --confirm {dbname}"
    )


def run(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    if not args.backup_id and not args.rollback:
        raise BadInput("name the backup to restore (BACKUP_ID or latest), or --rollback RESTORE_ID")
    req = RestoreRequest(
        backup_id=args.backup_id or "",
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
        signing=signing_from_args(args),
    )
    result = _run_job(args, store, req)
    plan = result.plan
    if args.json:
        out: dict[str, Any] = {
            "dry_run": req.dry_run,
            "plan": asdict(plan),
            "safety_backup_id": result.safety_backup_id,
            "restore_id": result.restore_id,
            "rolls_back": args.rollback,
        }
        if result.report is not None:
            out.update(result.report.summary())
        print(json.dumps(out, default=str))
    else:
        print("dry run, nothing touched:" if req.dry_run else "restore plan:")
        print("\n".join(f"  {line}" for line in plan.lines()))
        if args.rollback:
            print(
                f"  rollback: of restore {args.rollback}: every object in the target is dropped, "
                "then this safety backup (the target before that restore) is restored"
            )
        if result.safety_backup_id:
            print(f"safety backup: {result.safety_backup_id}")
        if result.restore_id:
            print(f"restore id: {result.restore_id} ({rollback_hint(result.restore_id, args)})")
        if result.report is not None:
            render_report(result.report, Console(highlight=False))
    if result.report is None:
        return EXIT_OK
    return EXIT_OK if result.report.passed else EXIT_FAILED
