"""`backproof backup --wait-verified`: a backup that counts only once verified, for a step before
migrations. Exit 0 verified, 1 failed (the backup is defective, or an operator check failed), 3
could not verify (nothing is known about the backup), 4 --timeout passed waiting for the
workflow (the execution goes on)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import boto3

from ..errors import EXIT_COULD_NOT_VERIFY, EXIT_FAILED, EXIT_OK, EXIT_TIMED_OUT, BadInput
from ..jobs.predeploy import TIMED_OUT, verify_through_workflow
from ..jobs.verify import VerifyOptions, verify_backup
from ..model.operator import parse_duration
from ..model.report import COULD_NOT_VERIFY, FAILED, VERIFIED
from ..store import BackupStore
from .args import add_operator_check_args
from .verify import operator_checks

EXIT_CODES = {
    VERIFIED: EXIT_OK,
    FAILED: EXIT_FAILED,
    COULD_NOT_VERIFY: EXIT_COULD_NOT_VERIFY,
    TIMED_OUT: EXIT_TIMED_OUT,
}


def add_wait_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("a backup that counts only once verified (before a migration)")
    g.add_argument(
        "--wait-verified",
        action="store_true",
        help="verify the backup right after it is taken (a local instance); exit 0 verified, "
        "1 failed, 3 could not verify, 4 timed out waiting for --through-workflow",
    )
    g.add_argument(
        "--through-workflow",
        metavar="STATE_MACHINE_ARN",
        help="verify with the deployed verify workflow instead (the stack's VerifyStateMachine "
        "output); --store must be the deployment's and --database-name a configured database",
    )
    g.add_argument(
        "--timeout",
        default="2h",
        metavar="DURATION",
        help="how long to wait for the workflow (default 2h); the execution goes on after it",
    )
    add_operator_check_args(p)


def check_wait_args(args: argparse.Namespace) -> float:
    """The timeout in seconds; BadInput (before anything is backed up) on flags that make no
    sense without --wait-verified."""
    if not args.wait_verified and (
        args.through_workflow or args.asserts or args.fresh or args.checks_file
    ):
        raise BadInput("--through-workflow and the check flags go with --wait-verified")
    if args.through_workflow and (args.asserts or args.fresh or args.checks_file):
        raise BadInput("the deployed workflow runs the configured checks; leave the check flags")
    return parse_duration(args.timeout).total_seconds()


def wait_verified(
    args: argparse.Namespace, store: BackupStore, database: str, backup: dict[str, Any]
) -> int:
    """Verify the backup just taken; print the backup and its verdict; the exit code."""
    verification: dict[str, Any]
    if args.through_workflow:
        outcome = verify_through_workflow(
            boto3.client("stepfunctions"),
            args.through_workflow,
            database=database,
            backup_id=backup["backup_id"],
            timeout_s=check_wait_args(args),
        )
        verdict, verification = outcome.verdict, outcome.summary()
    else:
        report = verify_backup(
            store,
            backup["backup_id"],
            database=database,
            options=VerifyOptions(
                instance="local", operator_checks=operator_checks(args), pg_bin_dir=args.pg_bin_dir
            ),
        )
        verdict, verification = report.verdict, report.summary()
    if args.json:
        print(json.dumps({**backup, "database": database, "verification": verification}))
    else:
        print(backup["backup_id"])
        where = verification.get("execution_arn") or verification.get("report_key") or ""
        problem = verification.get("error") or ", ".join(
            f"{c['check']} {c['subject']}" for c in verification.get("failed_checks") or []
        )
        print(
            f"  verification: {verdict} {where}" + (f" ({problem})" if problem else ""),
            file=sys.stderr,
        )
    return EXIT_CODES[verdict]
