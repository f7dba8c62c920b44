"""The `backproof` command. Thin: parse arguments, call a job, print, map errors to exit codes
(errors.py owns the codes). Nothing imports this package; it is the top layer."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from .. import __version__
from ..errors import EXIT_FAILED, BackproofError, Interrupted, Terminated, redact
from . import backup, demo, evidence, listing, native, restore, retention, status, verify
from .args import Parser

Handler = Callable[[argparse.Namespace], int]
# One module per subcommand, in the order `--help` lists them.
SUBCOMMANDS = (backup, listing, status, retention, verify, native, restore, evidence, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="backproof", description="PostgreSQL backups, each proved restorable.")
    parser.add_argument("--version", action="version", version=f"backproof {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in SUBCOMMANDS:
        command.register(sub)
    return parser


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        handler: Handler = args.handler
        return handler(args)
    except KeyboardInterrupt:
        return _fail(
            args,
            Interrupted("interrupted (SIGINT); the job was cleaned up and nothing was recorded"),
        )
    except Terminated:
        return _fail(
            args,
            Interrupted("stopped by SIGTERM; the job was cleaned up and nothing was recorded"),
        )
    except BackproofError as exc:
        return _fail(args, exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _fail(args: argparse.Namespace, exc: BackproofError) -> int:
    """One line on stderr; with --json also a machine-readable error as stdout's last line, so
    callers (the Fargate task) can tell a retryable cause from a final one."""
    # Notes say what is left to do after a failure (a restore's id, to roll it back).
    message = "; ".join([str(exc), *getattr(exc, "__notes__", [])])
    print(f"backproof: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json_error(type(exc).__name__, message, exc.exit_code), flush=True)
    return exc.exit_code


def json_error(name: str, message: str, exit_code: int) -> str:
    return json.dumps({"error": name, "message": message, "exit_code": exit_code})


def run() -> None:
    """Console-script entry point."""
    try:
        code = main()
    except SystemExit:
        raise
    except Exception as exc:  # last resort: still one line, still no password
        message = f"unexpected error: {redact(repr(exc))}"
        print(f"backproof: {message}", file=sys.stderr)
        if "--json" in sys.argv[1:]:
            print(json_error("UnexpectedError", message, EXIT_FAILED), flush=True)
        code = EXIT_FAILED
    sys.exit(code)
