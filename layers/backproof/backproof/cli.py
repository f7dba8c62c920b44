"""The `backproof` command. Thin: parse arguments, call the engine, print, map errors to exit
codes (errors.py owns the codes)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from . import __version__
from .errors import EXIT_BAD_INPUT, EXIT_OK, BackproofError, Interrupted, redact
from .manifest import COMPRESSIONS, TIERS

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"backproof: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def add_store_args(p: argparse.ArgumentParser, *, kms: bool = False) -> None:
    p.add_argument(
        "--store",
        required=True,
        metavar="s3://BUCKET/PREFIX",
        help="where backups live; set AWS_ENDPOINT_URL for MinIO or other S3 endpoints",
    )
    if kms:
        p.add_argument(
            "--kms-key-id",
            default=os.environ.get("BACKPROOF_KMS_KEY_ID"),
            help="KMS key for SSE-KMS (default: the bucket's default key, else SSE-S3)",
        )


def add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")


def _backup_parser(sub: Any) -> None:
    p = sub.add_parser("backup", help="take a consistent backup of one database")
    p.add_argument(
        "--source-url",
        default=os.environ.get("BACKPROOF_SOURCE_URL"),
        help="postgresql://USER@HOST:PORT/DBNAME (password from PGPASSWORD or a "
        "passfile rather than the URL)",
    )
    add_store_args(p, kms=True)
    p.add_argument(
        "--database-name",
        help="name the backup is filed under (default: the source's database name)",
    )
    p.add_argument("--tier", choices=TIERS, default="manual")
    p.add_argument("--compression", choices=COMPRESSIONS, default="zstd")
    p.add_argument(
        "--no-fingerprints",
        action="store_true",
        help="record row counts only (faster; verification then cannot compare content)",
    )
    p.add_argument("--pg-bin-dir", type=Path, help="directory holding pg_dump to prefer")
    add_output_args(p)
    p.set_defaults(handler=_cmd_backup)


def _cmd_backup(args: argparse.Namespace) -> int:
    from .backup import BackupRequest, run_backup
    from .progress import BackupProgress
    from .source import SourceSpec
    from .store import BackupStore

    source = SourceSpec.from_url(args.source_url or "")
    store = BackupStore.from_url(args.store, kms_key_id=args.kms_key_id)
    request = BackupRequest(
        source=source,
        store=store,
        database_name=args.database_name or source.dbname,
        tier=args.tier,
        compression=args.compression,
        fingerprints=not args.no_fingerprints,
        pg_bin_dir=args.pg_bin_dir,
    )
    with BackupProgress(enabled=not args.json and sys.stderr.isatty()) as progress:
        result = run_backup(request, progress=progress.update)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        print(summary["backup_id"])
        print(
            f"  {summary['tables']} tables, {summary['rows']} rows, {summary['size']} bytes "
            f"stored in {summary['seconds']} s; manifest s3://{store.bucket}/"
            f"{summary['manifest_key']}",
            file=sys.stderr,
        )
    return EXIT_OK


def _list_parser(sub: Any) -> None:
    p = sub.add_parser("list", help="list backups in a store")
    add_store_args(p)
    p.add_argument("--database-name", help="only this database")
    p.add_argument(
        "--all",
        action="store_true",
        help="also show uploads without a manifest (incomplete, not backups)",
    )
    add_output_args(p)
    p.set_defaults(handler=_cmd_list)


def _cmd_list(args: argparse.Namespace) -> int:
    from .listing import backup_rows, render_table
    from .store import BackupStore

    store = BackupStore.from_url(args.store)
    backups = store.list_backups(args.database_name, include_incomplete=args.all)
    rows = backup_rows(backups)
    if args.json:
        print(json.dumps(rows))
    else:
        print(render_table(rows))
    return EXIT_OK


def _retention_parser(sub: Any) -> None:
    p = sub.add_parser("retention", help="apply grandfather-father-son retention")
    add_store_args(p)
    p.add_argument("--database-name", help="only this database")
    p.add_argument(
        "--keep",
        metavar="TIER=N,...",
        help="newest backups to keep per tier (default daily=7,weekly=5,monthly=12,"
        "yearly=3,safety=5; manual backups are kept)",
    )
    p.add_argument("--dry-run", action="store_true", help="show the plan, delete nothing")
    add_output_args(p)
    p.set_defaults(handler=_cmd_retention)


def _cmd_retention(args: argparse.Namespace) -> int:
    from .retention import RetentionPolicy, apply_retention
    from .store import BackupStore

    policy = RetentionPolicy.parse(args.keep)
    plan = apply_retention(
        BackupStore.from_url(args.store), policy, database=args.database_name, dry_run=args.dry_run
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
    return EXIT_OK if not plan.failed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="backproof", description="PostgreSQL backups, each proved restorable.")
    parser.add_argument("--version", action="version", version=f"backproof {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _backup_parser(sub)
    _list_parser(sub)
    _retention_parser(sub)
    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands() -> list[Callable[[Any], None]]:
    """Parsers contributed by the verify, restore and demo modules."""
    registrars: list[Callable[[Any], None]] = []
    from . import commands

    registrars.extend(commands.REGISTRARS)
    return registrars


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted("stopped by SIGTERM; the job was cleaned up and nothing was recorded")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        handler: Handler = args.handler
        return handler(args)
    except KeyboardInterrupt:
        return _fail(
            args,
            Interrupted("interrupted (SIGINT); the job was cleaned up and nothing was recorded"),
        )
    except BackproofError as exc:
        return _fail(args, exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _fail(args: argparse.Namespace, exc: BackproofError) -> int:
    """One line on stderr; with --json also a machine-readable error as stdout's last line, so
    callers (the Fargate task) can tell a retryable cause from a final one."""
    print(f"backproof: {exc}", file=sys.stderr)
    if getattr(args, "json", False):
        error = {"error": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}
        print(json.dumps(error), flush=True)
    return exc.exit_code


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def run() -> None:
    """Console-script entry point."""
    try:
        code = main()
    except SystemExit:
        raise
    except Exception as exc:  # last resort: still one line, still no password
        print(f"backproof: unexpected error: {redact(repr(exc))}", file=sys.stderr)
        code = 1
    sys.exit(code)
