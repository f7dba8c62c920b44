"""`backproof evidence`: one bundle an auditor checks offline.

    backproof evidence BACKUP_ID --store s3://… --out FILE [--verify-key PEM | …]
    backproof evidence --check FILE

Building writes the bundle and then checks it as an auditor would. Exit 0 when every check
holds, 1 when any fails, 2 on bad input (no such backup, no key, unreadable file).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import EXIT_FAILED, EXIT_OK, BadInput
from ..jobs.evidence import BundleCheck, build_bundle, check_bundle
from ..model.operator import parse_duration
from ..store import open_store
from .args import Subparsers, add_output_args
from .signing import add_signing_args, signing_from_args


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "evidence",
        help="write one self-contained, signed evidence bundle for a backup, or check one "
        "offline (--check)",
    )
    p.add_argument("backup_id", nargs="?", metavar="BACKUP_ID|latest")
    p.add_argument("--store", metavar="s3://BUCKET/PREFIX", help="where the backup lives")
    p.add_argument("--database-name", help="the database the backup is filed under")
    p.add_argument("--out", type=Path, metavar="FILE", help="where to write the bundle (JSON)")
    p.add_argument(
        "--rto-target",
        metavar="AGE",
        help="recovery-time target each run's restore seconds are held against, e.g. 60m",
    )
    p.add_argument(
        "--check",
        type=Path,
        metavar="FILE",
        help="check a bundle with nothing but itself: no store, no AWS, no private key",
    )
    add_signing_args(p, sign=False)
    add_output_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.check is not None:
        if args.backup_id or args.out:
            raise BadInput("--check FILE checks a bundle; it takes no BACKUP_ID or --out")
        return _report(check_bundle(_read(args.check)), args, args.check)
    missing = [
        n
        for n, v in (("BACKUP_ID", args.backup_id), ("--store", args.store), ("--out", args.out))
        if not v
    ]
    if missing:
        raise BadInput(f"building a bundle needs {', '.join(missing)} (or --check FILE)")
    target = parse_duration(args.rto_target).total_seconds() if args.rto_target else None
    bundle = build_bundle(
        open_store(args.store),
        args.backup_id,
        database=args.database_name,
        signing=signing_from_args(args, sign=False),
        rto_target_seconds=target,
    )
    data = json.dumps(bundle, indent=2).encode()
    try:
        args.out.write_bytes(data)
    except OSError as exc:
        raise BadInput(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    return _report(check_bundle(data), args, args.out)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read bundle {path}: {exc.strerror or exc}") from exc


def _report(result: BundleCheck, args: argparse.Namespace, path: Path) -> int:
    if args.json:
        print(
            json.dumps(
                {
                    "bundle": str(path),
                    "backup_id": result.backup_id,
                    "database": result.database,
                    "valid": result.ok,
                    "findings": [{"status": f.status, "what": f.what} for f in result.findings],
                }
            )
        )
    else:
        print(f"evidence bundle {path}: backup {result.backup_id} of {result.database}")
        print("\n".join(f"  {line}" for line in result.lines()))
        verdict = "valid" if result.ok else "NOT VALID: see the FAIL lines"
        print(f"{verdict} ({len(result.findings)} things checked)", file=sys.stdout)
    return EXIT_OK if result.ok else EXIT_FAILED
