"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TypeAlias

from ..errors import EXIT_BAD_INPUT


class Parser(argparse.ArgumentParser):
    """Usage errors exit 2 (bad input), like every other input the command rejects."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"backproof: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


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


def add_operator_check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--assert",
        dest="asserts",
        action="append",
        default=[],
        metavar="SQL",
        help="SQL that must return true on the restored database (repeatable)",
    )
    p.add_argument(
        "--fresh",
        action="append",
        default=[],
        metavar="TABLE.COLUMN=AGE",
        help="newest value no older than AGE (e.g. 26h) at the snapshot time",
    )
    p.add_argument(
        "--checks-file", metavar="PATH", help="TOML or JSON with 'assert' and 'fresh' lists"
    )


SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def add_tls_args(p: argparse.ArgumentParser, *, url_flag: str) -> None:
    p.add_argument(
        "--sslmode",
        choices=SSLMODES,
        help=f"TLS for {url_flag} (default: libpq's, or sslmode= in the URL)",
    )
    p.add_argument(
        "--sslrootcert",
        metavar="PATH",
        help="CA certificates that verify the server (for verify-ca/verify-full), e.g. the "
        "RDS bundle",
    )


def tls_params(args: argparse.Namespace) -> dict[str, str]:
    """The TLS settings given on the command line (none: keep libpq's and the URL's)."""
    return {
        name: value
        for name in ("sslmode", "sslrootcert")
        if (value := getattr(args, name, None)) is not None
    }


def add_rds_instance_args(rds: argparse._ArgumentGroup) -> None:
    """Where and how a temporary RDS instance is created (flags or BACKPROOF_RDS_* variables)."""
    rds.add_argument("--rds-subnet-group", default=os.environ.get("BACKPROOF_RDS_SUBNET_GROUP"))
    rds.add_argument(
        "--rds-security-group",
        action="append",
        default=[s for s in os.environ.get("BACKPROOF_RDS_SECURITY_GROUPS", "").split(",") if s],
    )
    rds.add_argument(
        "--rds-instance-class",
        default=os.environ.get("BACKPROOF_RDS_INSTANCE_CLASS", "db.t4g.medium"),
    )


def watching(args: argparse.Namespace) -> bool:
    """A person is watching: show progress (never with --json, never into a pipe)."""
    return not getattr(args, "json", False) and sys.stderr.isatty()
