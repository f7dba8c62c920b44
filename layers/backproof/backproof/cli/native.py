"""`backproof pitr` and `backproof verify-snapshot`: prove RDS's own ways back by restoring one
into a temporary instance, checking it, comparing it with the nearest logical backup, and
deleting it (jobs/native.py)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import boto3
from rich.console import Console

from ..errors import EXIT_FAILED, EXIT_OK, BadInput
from ..instances.native import (
    POINT_IN_TIME,
    SNAPSHOT,
    RestoredInstance,
    WayBack,
    parse_time,
    plan_point_in_time,
    plan_snapshot,
)
from ..instances.rds import RdsSettings
from ..jobs.native import WayBackRequest, verify_way_back
from ..pg.target import Target
from ..store import open_store
from .args import (
    Subparsers,
    add_operator_check_args,
    add_output_args,
    add_rds_instance_args,
    add_store_args,
    add_tls_args,
    tls_params,
    watching,
)
from .progress import StepProgress
from .render import render_report
from .verify import operator_checks


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source-instance", required=True, help="the source's RDS instance identifier")
    add_store_args(p)
    p.add_argument(
        "--database-name",
        required=True,
        help="the name the database's logical backups are filed under (compared with)",
    )
    p.add_argument(
        "--dbname",
        help="the database on the server (default: the one the nearest logical backup names)",
    )
    add_operator_check_args(p)
    rds = p.add_argument_group("the temporary instance")
    add_rds_instance_args(rds)
    given = p.add_argument_group("an instance someone else restored (the deployed workflow)")
    given.add_argument(
        "--target-url",
        metavar="postgresql://USER@HOST:PORT/postgres",
        help="check this already restored server instead of restoring one (password from "
        "PGPASSWORD); needs the exact time it holds",
    )
    given.add_argument("--restore-seconds", type=float, help="how long its restore took")
    given.add_argument("--engine-version", default="", help="the restored server's version")
    add_tls_args(p, url_flag="--target-url")
    p.add_argument("--no-write", action="store_true", help="do not write the evidence")
    add_output_args(p)


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "pitr",
        help="prove a point-in-time restore of an RDS instance: restore, check, compare, delete",
    )
    _common(p)
    p.add_argument(
        "--time",
        required=True,
        metavar="2026-11-21T04:00:00Z|latest",
        help="the time to restore to (UTC with Z, or another zone), or its latest restorable",
    )
    p.set_defaults(handler=run, way=POINT_IN_TIME)
    s = sub.add_parser(
        "verify-snapshot",
        help="prove an RDS snapshot (the newest by default) restorable: restore, check, delete",
    )
    _common(s)
    s.add_argument("--snapshot", default="latest", metavar="SNAPSHOT_ID|latest")
    s.add_argument("--snapshot-time", help="with --target-url: when the snapshot was taken")
    s.add_argument("--snapshot-type", help="with --target-url: automated or manual")
    s.set_defaults(handler=run, way=SNAPSHOT)


def _given_way(args: argparse.Namespace) -> WayBack:
    """The way back an already restored instance holds, as the caller states it."""
    if args.way == POINT_IN_TIME:
        at = parse_time(args.time)
        if at is None:
            raise BadInput("with --target-url, --time must be the exact time restored to")
        return WayBack(POINT_IN_TIME, args.source_instance, at, args.engine_version)
    if args.snapshot == "latest" or not args.snapshot_time:
        raise BadInput("with --target-url, name the --snapshot and its --snapshot-time")
    at = parse_time(args.snapshot_time)
    assert at is not None
    return WayBack(
        SNAPSHOT,
        args.source_instance,
        at,
        args.engine_version,
        args.snapshot,
        snapshot_type=args.snapshot_type,
    )


def run(args: argparse.Namespace) -> int:
    checks = operator_checks(args)
    store = open_store(args.store)
    instance: RestoredInstance | None = None
    admin: Target | None = None
    info: dict[str, Any] | None = None
    if args.target_url:
        way = _given_way(args)
        admin = Target.from_url(args.target_url, what="target", flag="--target-url")
        admin = admin.with_params(**tls_params(args))
        info = {"kind": "given", "target": admin.display}
    else:
        rds = boto3.client("rds")
        if args.way == POINT_IN_TIME:
            way = plan_point_in_time(rds, args.source_instance, parse_time(args.time))
        else:
            chosen = None if args.snapshot == "latest" else args.snapshot
            way = plan_snapshot(rds, args.source_instance, chosen)
        settings = RdsSettings(
            subnet_group=args.rds_subnet_group or "",
            security_group_ids=args.rds_security_group,
            instance_class=args.rds_instance_class,
        )
        instance = RestoredInstance(way=way, settings=settings, rds_client=rds)
    request = WayBackRequest(
        database=args.database_name,
        way=way,
        dbname=args.dbname,
        operator_checks=checks,
        write=not args.no_write,
        restore_seconds=args.restore_seconds,
    )
    with StepProgress(watching(args)) as status:
        report = verify_way_back(
            store,
            request,
            instance=instance,
            admin=admin,
            instance_info=info,
            progress=status.update,
        )
    if args.json:
        print(json.dumps({**report.summary(), "kind": report.kind, **report_tools(report)}))
    else:
        render_report(report, Console(highlight=False))
    return EXIT_OK if report.passed else EXIT_FAILED


def report_tools(report: Any) -> dict[str, Any]:
    return {k: report.tools.get(k) for k in ("way_back", "compared_with")}
