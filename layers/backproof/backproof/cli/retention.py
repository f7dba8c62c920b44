"""`backproof retention`: grandfather-father-son retention, with a dry run."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import EXIT_FAILED, EXIT_OK
from ..jobs.retention import RetentionPolicy, apply_retention
from ..store import BACKUPS, SAFETY, open_store
from .args import Subparsers, add_output_args, add_store_args


def register(sub: Subparsers) -> None:
    p = sub.add_parser("retention", help="apply grandfather-father-son retention")
    add_store_args(p)
    p.add_argument("--database-name", help="only this database")
    p.add_argument(
        "--keep",
        metavar="TIER=N,...",
        help="newest backups to keep per tier (default daily=7,weekly=5,monthly=12,"
        "yearly=3,safety=5; manual backups are kept)",
    )
    p.add_argument(
        "--keep-days",
        metavar="TIER=DAYS,...",
        help="also keep every backup of the tier younger than DAYS (a backup is deleted only "
        "when outside both the count and the age window), e.g. daily=10,monthly=400",
    )
    p.add_argument("--dry-run", action="store_true", help="show the plan, delete nothing")
    p.add_argument(
        "--safety",
        action="store_true",
        help="apply to the safety backups of restore targets (each keeps its newest `safety` "
        "ones) instead of the databases' backups",
    )
    add_output_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    policy = RetentionPolicy.parse(args.keep, args.keep_days)
    plan = apply_retention(
        open_store(args.store),
        policy,
        database=args.database_name,
        dry_run=args.dry_run,
        namespace=SAFETY if args.safety else BACKUPS,
    )
    if args.json:
        print(json.dumps(plan.to_dict()))
        return EXIT_OK
    for d in plan.decisions:
        print(
            f"{d.action.upper():6}  {d.database:20}  {d.backup_id}  {d.tier or '-':8}  {d.reason}"
        )
    verb = "would delete" if plan.dry_run else "deleted"
    print(
        f"{verb} {len(plan.to_delete) if plan.dry_run else len(plan.deleted)} backups, "
        f"kept {len(plan.decisions) - len(plan.to_delete)}",
        file=sys.stderr,
    )
    return EXIT_OK if not plan.failed else EXIT_FAILED
