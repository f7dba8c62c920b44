"""`backproof list`: backups in a store, with their verification status."""

from __future__ import annotations

import argparse
import json

from ..errors import EXIT_OK
from ..jobs.listing import list_backups
from ..store import BACKUPS, SAFETY, open_store
from .args import Subparsers, add_output_args, add_store_args
from .render import render_table


def register(sub: Subparsers) -> None:
    p = sub.add_parser("list", help="list backups in a store")
    add_store_args(p)
    p.add_argument("--database-name", help="only this database")
    p.add_argument(
        "--all",
        action="store_true",
        help="also show uploads without a manifest (incomplete, not backups)",
    )
    p.add_argument(
        "--safety",
        action="store_true",
        help="list the safety backups taken of restore targets before a restore (filed by "
        "target: instance and database) instead of the databases' backups",
    )
    add_output_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    rows = list_backups(
        open_store(args.store),
        args.database_name,
        include_incomplete=args.all,
        namespace=SAFETY if args.safety else BACKUPS,
    )
    if args.json:
        print(json.dumps(rows))
    else:
        if args.safety:
            print("safety backups (a restore target's state before a restore replaced it):")
        print(render_table(rows))
    return EXIT_OK
