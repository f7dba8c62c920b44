"""`--replica` for `verify` and `status`: the second region's copy of the store."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ..errors import EXIT_FAILED, EXIT_OK
from ..jobs.replica import ReplicationLag, check_replica, replication_lag
from ..store import BackupStore, open_replica, open_store


def add_replica_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--replica",
        metavar="s3://BUCKET[/PREFIX]",
        default=os.environ.get("BACKPROOF_REPLICA"),
        help=what,
    )
    p.add_argument(
        "--replica-region",
        default=os.environ.get("BACKPROOF_REPLICA_REGION"),
        help="the replica bucket's region (default: asked of S3, GetBucketLocation)",
    )


def replica_of(args: argparse.Namespace) -> BackupStore:
    return open_replica(args.replica, region=args.replica_region)


def verify_replica(args: argparse.Namespace) -> int:
    """Exit 0 when the replica holds an exact copy of the backup, 1 naming each difference."""
    store = open_store(args.store)
    stored = store.find(args.backup_id, args.database_name)
    results = check_replica(store, replica_of(args), stored)
    bad = [r for r in results if r.failed]
    if args.json:
        print(
            json.dumps(
                {
                    "backup_id": stored.backup_id,
                    "database": stored.database,
                    "replica": args.replica,
                    "passed": not bad,
                    "checks": [r.to_dict() for r in results],
                },
                default=str,
            )
        )
    else:
        objects = len({r.subject for r in results})
        for r in bad:
            print(f"FAIL {r.check} {r.subject}: expected {r.expected}, found {r.found} {r.detail}")
        verdict = "differs from the source" if bad else "is an exact copy"
        print(f"replica {args.replica}: backup {stored.backup_id} ({objects} objects) {verdict}")
    return EXIT_FAILED if bad else EXIT_OK


def lag_of(args: argparse.Namespace, store: BackupStore) -> list[ReplicationLag] | None:
    if not args.replica:
        return None
    return replication_lag(store, replica_of(args), database=args.database_name)


def lag_dicts(lags: list[ReplicationLag] | None) -> dict[str, Any]:
    return {} if lags is None else {"replication": [lag.to_dict() for lag in lags]}


def render_lag(lags: list[ReplicationLag], age: Any) -> str:
    """One line per database: newest at the source and at the replica, and the lag."""
    lines = ["REPLICA"]
    for lag in lags:
        seconds = lag.lag_seconds
        behind = "holds nothing" if seconds is None else f"lag {age(seconds)} ({seconds:.0f}s)"
        lines.append(
            f"{lag.database}: source newest {lag.source_newest or '-'}, replica newest "
            f"{lag.replica_newest or '-'}, {behind}, {lag.missing} backup(s) missing"
        )
    return "\n".join(lines)
