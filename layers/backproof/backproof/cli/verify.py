"""`backproof verify`: prove a backup restorable by restoring it and comparing."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console

from ..errors import EXIT_FAILED, EXIT_OK
from ..instances import INSTANCE_KINDS
from ..instances.local import RDS_MASTER, RESTORE_AS
from ..instances.rds import RdsSettings
from ..jobs.verify import VerifyOptions, verify_backup, verify_on_target
from ..model.operator import OperatorChecks, parse_duration
from ..model.recovery import RecoveryTargets
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
from .replica import add_replica_args, verify_replica
from .signing import add_signing_args, signing_from_args


def register(sub: Subparsers) -> None:
    p = sub.add_parser("verify", help="prove a backup restorable: restore it and compare")
    p.add_argument("backup_id", metavar="BACKUP_ID|latest")
    add_store_args(p)
    p.add_argument("--database-name", help="the database the backup is filed under")
    p.add_argument(
        "--instance",
        choices=INSTANCE_KINDS,
        default="local",
        help="where to restore: a local ephemeral cluster or a temporary RDS instance",
    )
    p.add_argument(
        "--restore-as",
        choices=RESTORE_AS,
        default=RDS_MASTER,
        help="the role a local instance restores as: a non-superuser like RDS's master user "
        "(default), or a superuser for databases that need one and never go to RDS",
    )
    add_operator_check_args(p)
    p.add_argument("--jobs", type=int, default=None, help="pg_restore jobs (default: cores)")
    p.add_argument("--pg-bin-dir", type=Path, help="directory holding pg_restore/initdb to prefer")
    p.add_argument("--no-write", action="store_true", help="do not write the verification evidence")
    p.add_argument(
        "--rto-target",
        metavar="DURATION",
        default=os.environ.get("BACKPROOF_RTO_TARGET"),
        help="recovery time objective (e.g. 60m): the evidence says whether the time to a "
        "checked database met it",
    )
    p.add_argument(
        "--rpo-target",
        metavar="DURATION",
        default=os.environ.get("BACKPROOF_RPO_TARGET"),
        help="recovery point objective (e.g. 38h): the evidence says whether the data's age "
        "at the checked database met it",
    )
    rds = p.add_argument_group("RDS instance (--instance rds)")
    add_rds_instance_args(rds)
    rds.add_argument("--rds-kms-key-id", default=os.environ.get("BACKPROOF_RDS_KMS_KEY_ID"))
    p.add_argument(
        "--target-url",
        metavar="postgresql://USER@HOST:PORT/postgres",
        help="restore into a server you provide and remove yourself, instead of "
        "creating an instance (password from PGPASSWORD or a passfile)",
    )
    add_tls_args(p, url_flag="--target-url")
    add_signing_args(p)
    add_replica_args(p, "instead of restoring, check that this replica holds an exact copy")
    add_output_args(p)
    p.set_defaults(handler=run)


def rds_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "settings": RdsSettings(
            subnet_group=args.rds_subnet_group or "",
            security_group_ids=args.rds_security_group,
            instance_class=args.rds_instance_class,
            kms_key_id=args.rds_kms_key_id,
        )
    }


def recovery_targets(args: argparse.Namespace) -> RecoveryTargets:
    return RecoveryTargets(
        rto=parse_duration(args.rto_target) if args.rto_target else None,
        rpo=parse_duration(args.rpo_target) if args.rpo_target else None,
    )


def operator_checks(args: argparse.Namespace) -> OperatorChecks:
    return OperatorChecks.from_cli(args.asserts, args.fresh, args.checks_file)


def run(args: argparse.Namespace) -> int:
    if args.replica:
        return verify_replica(args)
    checks = operator_checks(args)
    store = open_store(args.store)
    signing = signing_from_args(args)
    options = VerifyOptions(
        instance=args.instance,
        operator_checks=checks,
        jobs=args.jobs,
        pg_bin_dir=args.pg_bin_dir,
        instance_options=rds_options(args) if args.instance == "rds" else None,
        write=not args.no_write,
        restore_as=args.restore_as,
        signing=signing,
        targets=recovery_targets(args),
    )
    with StepProgress(watching(args)) as status:
        if args.target_url:
            admin = Target.from_url(args.target_url, what="target", flag="--target-url")
            admin = admin.with_params(**tls_params(args))
            report = verify_on_target(
                store,
                store.find(args.backup_id, args.database_name),
                admin,
                operator_checks=checks,
                jobs=args.jobs,
                pg_bin_dir=args.pg_bin_dir,
                instance_info={"kind": "given", "target": admin.display},
                write=not args.no_write,
                progress=status.update,
                signing=signing,
                targets=options.targets,
            )
        else:
            report = verify_backup(
                store,
                args.backup_id,
                database=args.database_name,
                options=options,
                progress=status.update,
            )
    if args.json:
        print(json.dumps(report.summary(), default=str))
    else:
        render_report(report, Console(highlight=False))
    return EXIT_OK if report.passed else EXIT_FAILED
