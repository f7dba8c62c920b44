"""`backproof demo`: the whole loop with everything embedded, on loopback, then gone.

An S3 + KMS endpoint (moto's server on 127.0.0.1, random port), a source PostgreSQL cluster
seeded with a small shop (foreign keys, about 100k rows), a backup into the embedded store
encrypted with a customer KMS key, a verification by restore into a second throwaway cluster,
and a readable report. Everything is shut down before the command returns.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import ConfigurationError
from ..jobs.backup import BackupRequest, run_backup
from ..jobs.evidence import build_bundle, check_bundle
from ..jobs.listing import list_backups
from ..jobs.status import store_status
from ..jobs.verify import VerifyOptions, verify_backup
from ..model.operator import OperatorChecks
from ..pg.cluster import LocalCluster
from ..signing import open_signing
from ..store import open_store
from .args import Subparsers
from .demo_seed import seed_shop
from .progress import DemoSteps, backup_messages
from .render import render_report, render_table
from .status import render as render_status

DEMO_REGION = "us-east-1"
DEMO_BUCKET = "backproof-demo"
DEMO_DATABASE = "shop"


@contextlib.contextmanager
def embedded_aws() -> Iterator[str]:
    """moto's S3/KMS server on a random loopback port; this process's AWS settings point at it
    until the block ends (so nothing can reach a real AWS account meanwhile)."""
    try:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - optional: the `local` extra
    except ImportError as exc:  # the CLI installs without the `local` extra
        raise ConfigurationError(
            "the demo needs the embedded S3 (pip install 'backproof[local]')"
        ) from exc
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log on the console
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    overrides = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_DEFAULT_REGION": DEMO_REGION,
        "AWS_REGION": DEMO_REGION,
    }
    hidden = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
    saved = {k: os.environ.get(k) for k in (*overrides, *hidden)}
    os.environ.update(overrides)
    for name in hidden:
        os.environ.pop(name, None)
    try:
        yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


def run_demo(console: Console, *, scale: float = 1.0, report_file: Path | None = None) -> int:
    console.rule("[bold]backproof demo")
    progress = Progress(
        SpinnerColumn(finished_text="[green]✓"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
    )
    steps = DemoSteps(progress)
    with progress, contextlib.ExitStack() as stack:
        with steps.step("start embedded S3 + KMS on loopback"):
            endpoint = stack.enter_context(embedded_aws())
            s3 = boto3.client("s3")
            s3.create_bucket(Bucket=DEMO_BUCKET)
            kms = boto3.client("kms")
            key_arn = kms.create_key(Description="backproof demo key")["KeyMetadata"]["Arn"]
            kms.enable_key_rotation(KeyId=key_arn)
            # An asymmetric key signs every manifest and report, as the deployed task's does.
            signing_key = kms.create_key(
                Description="backproof demo signing key",
                KeySpec="ECC_NIST_P256",
                KeyUsage="SIGN_VERIFY",
            )["KeyMetadata"]["Arn"]
            signing = open_signing(kms_key_id=signing_key, kms_client=kms)
        with steps.step("start source PostgreSQL and seed a shop") as note:
            source = stack.enter_context(LocalCluster(name="backproof-demo-source"))
            source.create_database(DEMO_DATABASE)
            note("creating tables and ~100k rows")
            with source.target(DEMO_DATABASE).connect(autocommit=True) as conn:
                rows = seed_shop(conn, scale)
        store = open_store(f"s3://{DEMO_BUCKET}/demo", kms_key_id=key_arn)
        spec = source.target(DEMO_DATABASE)
        with steps.step("back up (one snapshot, streamed, SSE-KMS)") as note:
            result = run_backup(
                BackupRequest(
                    source=spec,
                    store=store,
                    database_name=DEMO_DATABASE,
                    tier="daily",
                    signing=signing,
                ),
                progress=backup_messages(note),
            )
        backup_id = result.manifest.backup_id
        checks = OperatorChecks.from_cli(
            [
                "SELECT count(*) > 0 FROM public.orders",
                "SELECT NOT EXISTS (SELECT 1 FROM payments p JOIN order_totals t USING (order_id) "
                "WHERE p.amount <> t.total)",
            ],
            ["orders.created_at=26h"],
        )
        with steps.step("verify by restore into a throwaway cluster") as note:
            report = verify_backup(
                store,
                backup_id,
                options=VerifyOptions(operator_checks=checks, signing=signing),
                progress=note,
            )
        listing = render_table(list_backups(store))
        with steps.step("status, and the evidence bundle checked offline"):
            status = store_status(store)
            bundle = json.dumps(build_bundle(store, backup_id, signing=signing)).encode()
            bundle_check = check_bundle(bundle)
        report_json = report.to_json()
        with steps.step("shut everything down"):
            stack.close()
    if report_file:
        report_file.write_bytes(report_json)
    _print_summary(console, rows, result.summary(), endpoint, steps.seconds)
    render_report(report, console)
    console.print("\n[bold]backproof list[/] (as it stood before shutdown):")
    console.print(listing, highlight=False)
    console.print("\n[bold]backproof status[/]:")
    console.print(render_status(status), highlight=False)
    console.print(
        f"\n[bold]backproof evidence --check[/] on the bundle of {backup_id} "
        f"({len(bundle) // 1024} KiB, checked with nothing but itself):"
    )
    console.print("\n".join(f"  {line}" for line in bundle_check.lines()), highlight=False)
    console.print(
        "evidence bundle: " + ("valid" if bundle_check.ok else "NOT VALID"),
        style="bold green" if bundle_check.ok else "bold red",
    )
    where = f"s3://{DEMO_BUCKET}/{report.report_key}" if report.report_key else "-"
    console.print(
        f"\nThe evidence was {where} on the embedded store (gone with it)"
        + (
            f"; a copy is in {report_file}"
            if report_file
            else "; keep a copy with --report-file PATH"
        )
        + "."
    )
    return 0 if report.passed and status.healthy and bundle_check.ok else 1


def _print_summary(
    console: Console, rows: int, backup: dict[str, Any], endpoint: str, seconds: dict[str, float]
) -> None:
    table = Table(title="what happened", show_header=True)
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for title, took in seconds.items():
        table.add_row(title, f"{took:.1f}")
    console.print(table)
    console.print(
        f"source: {rows} rows seeded; backup {backup['backup_id']}: {backup['tables']} tables, "
        f"{backup['rows']} rows, {backup['size'] / 2**20:.2f} MiB stored (zstd, SSE-KMS) on "
        f"{endpoint}",
        highlight=False,
    )


def register(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="run backup + verify-by-restore with everything embedded")
    p.add_argument(
        "--scale", type=float, default=1.0, help="size of the seeded shop (1.0 = about 100k rows)"
    )
    p.add_argument("--report-file", type=Path, help="also write the verification evidence here")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return run_demo(Console(highlight=False), scale=args.scale, report_file=args.report_file)
