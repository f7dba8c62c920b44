"""`backproof status`: is every database protected by a recently verified backup?

Exit 0 when every database has a verified backup within its allowed age, 1 when any has not
(or the store holds no backups at all), 2 on bad input: a cron job or CI step can run it as
a health check as it is.
"""

from __future__ import annotations

import argparse
import json

from ..errors import EXIT_FAILED, EXIT_OK
from ..jobs.status import AgeLimits, DatabaseStatus, StatusReport, store_status
from ..model.operator import parse_duration
from ..store import open_store
from .args import Subparsers, add_output_args, add_store_args
from .replica import add_replica_args, lag_dicts, lag_of, render_lag

SPARKS = "▁▂▃▄▅▆▇█"


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "status",
        help="per database: newest and newest verified backup, last verdicts, restore time; "
        "exit 1 when any has no verified backup within its allowed age",
    )
    add_store_args(p)
    p.add_argument("--database-name", help="only this database (reported even with no backups)")
    p.add_argument(
        "--max-age",
        action="append",
        default=[],
        metavar="[DATABASE=]AGE",
        help="how old the newest verified backup may be (default 26h); DATABASE=AGE for one "
        "database, e.g. --max-age 26h --max-age billing=8d",
    )
    p.add_argument(
        "--rto-target",
        metavar="AGE",
        help="recovery-time target the last measured restore is held against, e.g. 60m",
    )
    p.add_argument(
        "--rpo-target",
        metavar="AGE",
        help="recovery-point target the newest verified backup's age is held against, e.g. 38h",
    )
    add_replica_args(p, "also show how far this replica (the second region) lags, per database")
    add_output_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    limits = AgeLimits.parse(args.max_age)
    rto = parse_duration(args.rto_target) if args.rto_target else None
    rpo = parse_duration(args.rpo_target) if args.rpo_target else None
    store = open_store(args.store)
    report = store_status(
        store,
        database=args.database_name,
        limits=limits,
        rto_target=rto,
        rpo_target=rpo,
    )
    lags = lag_of(args, store)
    if args.json:
        print(json.dumps({**report.to_dict(), **lag_dicts(lags)}))
    else:
        print(render(report) + ("" if lags is None else "\n" + render_lag(lags, age)))
    return EXIT_OK if report.healthy else EXIT_FAILED


def age(seconds: float | None) -> str:
    """3d 4h, 5h 12m, 14m, 40s."""
    if seconds is None:
        return "-"
    s = max(int(seconds), 0)
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{secs}s"


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def sparkline(values: list[int]) -> str:
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return SPARKS[3] * len(values)
    scale = (len(SPARKS) - 1) / (high - low)
    return "".join(SPARKS[round((v - low) * scale)] for v in values)


def _restore(d: DatabaseStatus) -> str:
    """RTO: the last measured time to a checked database, against the target."""
    if d.recovery_seconds is None:
        return "-"
    text = f"{d.recovery_seconds:.0f}s"
    if d.rto_target is not None:
        target = age(d.rto_target.total_seconds())
        text += f" / {target} " + ("ok" if d.rto_met else "OVER")
    return text


def _point(d: DatabaseStatus) -> str:
    """RPO: what a restore now would lose (the newest verified backup's age), against the target."""
    if d.verified_age_seconds is None:
        return "-"
    text = age(d.verified_age_seconds)
    if d.rpo_target is not None:
        text += f" / {age(d.rpo_target.total_seconds())} " + ("ok" if d.rpo_met else "OVER")
    return text


def _row(d: DatabaseStatus) -> list[str]:
    newest = d.newest
    verified = d.newest_verified
    failed = d.last_runs.get("failed")
    trend = [s for _, s in d.sizes]
    return [
        d.database,
        "ok" if d.fresh else ("STALE" if verified else "NEVER VERIFIED"),
        f"{age(newest.age_seconds)} ago ({newest.tier or '?'}, {newest.verification})"
        if newest
        else "-",
        f"{age(verified.age_seconds)} ago" if verified else "-",
        age(d.max_age.total_seconds()),
        f"{age(failed.age_seconds)} ago" if failed else "-",
        _restore(d),
        _point(d),
        f"{sparkline(trend)} {size(trend[-1])}" if trend else "-",
    ]


def render(report: StatusReport) -> str:
    if not report.databases:
        return f"no backups in {report.store}: nothing is protected"
    headers = [
        "DATABASE",
        "STATUS",
        "NEWEST BACKUP",
        "NEWEST VERIFIED",
        "ALLOWED",
        "LAST FAILED",
        "RESTORE (RTO)",
        "DATA LOSS (RPO)",
        "SIZE TREND",
    ]
    body = [_row(d) for d in report.databases]
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    for d in report.databases:
        for problem in d.problems:
            lines.append(f"{d.database}: {problem}")
        for verdict, r in d.last_runs.items():
            if verdict != "verified" and r.detail:
                lines.append(f"{d.database}: last {verdict} ({r.backup_id}): {r.detail}")
    return "\n".join(line.rstrip() for line in lines)
