"""The deployment's configuration, read from `cdk.json` context and validated at synth.

Every mistake fails `cdk synth` with a message naming the database and the field, so a
typo never reaches CloudFormation (or, worse, a schedule that silently backs up nothing).
"""

from __future__ import annotations

import json
import re
import zoneinfo
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TIERS = ("daily", "weekly", "monthly", "yearly")
# Hours between backups per tier, plus slack for the dump, the wait for a slot and the verify.
TIER_HOURS = {"daily": 24, "weekly": 7 * 24, "monthly": 31 * 24, "yearly": 366 * 24}
VERIFY_SLACK_HOURS = 14
NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
# An EventBridge Scheduler cron expression: cron(minutes hours day-of-month month day-of-week year)
CRON = re.compile(r"^cron\((\S+\s+){5}\S+\)$")
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+$")
VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
SG_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
ROUTE_TABLE_ID = re.compile(r"^rtb-[0-9a-f]{8,17}$")
# An RDS DB instance identifier: a letter, then letters, digits and single hyphens, at most 63.
RDS_INSTANCE_ID = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{0,62}(?<!-)$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DURATION = re.compile(r"^\d+[mhd]$")
# A database name or shell-style pattern ("*", "app_*"): no control characters, at most 63.
DATABASE_PATTERN = re.compile(r"^[^\x00-\x1f\x7f]{1,63}$")
INSTANCE_CLASS = re.compile(r"^db\.[a-z0-9]+\.[a-z0-9]+$")
# A dead-man's-switch ping (healthchecks.io and the like): HTTPS, no spaces.
PING_URL = re.compile(r"^https://[^\s/?#]+[^\s]*$")
# Retention by age: at most ten years.
MAX_RETENTION_DAYS = 3660
# libpq's TLS modes. verify-full (the default) checks the server's certificate against the RDS
# CA bundle in the task image and its host name; `require` only encrypts.
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# Fargate's valid CPU (units) to memory (MiB) ranges.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html#task_size
FARGATE_MEMORY = {
    1024: range(2048, 8193, 1024),
    2048: range(4096, 16385, 1024),
    4096: range(8192, 30721, 1024),
    8192: range(16384, 61441, 4096),
    16384: range(32768, 122881, 8192),
}
# One SSM String parameter (standard tier) holds each database's resolved settings.
SSM_STANDARD_LIMIT = 4096
# The second region: an existing bucket (made outside this stack) and its own KMS key.
BUCKET_ARN = re.compile(r"^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key/(mrk-)?[0-9a-f-]{32,36}$")


class ConfigError(ValueError):
    """The configuration is wrong; the message names the database and field."""


def _fail(where: str, field_name: str, problem: str) -> ConfigError:
    return ConfigError(f"backproof config: {where}: field '{field_name}' {problem}")


class _Reader:
    """Reads one mapping, remembering where it is for error messages."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(
                f"backproof config: {where}: expected an object, got {type(data).__name__}"
            )
        self.data = data
        self.where = where
        self.seen: set[str] = set()

    def get(
        self,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = ...,
        pattern: re.Pattern[str] | None = None,
    ) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if default is ...:
                raise _fail(self.where, key, "is missing")
            return default
        value = self.data[key]
        if isinstance(value, bool) and kind in (int, float):
            raise _fail(self.where, key, f"must be {kind.__name__}, got a boolean")
        if not isinstance(value, kind):
            expected = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise _fail(
                self.where, key, f"must be {expected}, got {type(value).__name__} {value!r}"
            )
        if pattern is not None and not pattern.match(str(value)):
            raise _fail(self.where, key, f"has an invalid value {value!r}")
        return value

    def strings(
        self, key: str, pattern: re.Pattern[str], default: Any = ..., non_empty: bool = True
    ) -> tuple[str, ...]:
        items = self.get(key, list, default)
        if non_empty and not items:
            raise _fail(self.where, key, "must list at least one value")
        for item in items:
            if not isinstance(item, str) or not pattern.match(item):
                raise _fail(self.where, key, f"has an invalid entry {item!r}")
        return tuple(items)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise _fail(self.where, unknown[0], "is not a known field (typo?)")


@dataclass(frozen=True)
class Schedule:
    cron: str
    time_zone: str = "UTC"


@dataclass(frozen=True)
class Checks:
    """Operator checks run on every verification restore, beside the manifest checks."""

    assertions: tuple[str, ...] = ()
    # "schema.table.column" -> maximum age such as "26h", relative to the snapshot time.
    freshness: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RestoreTarget:
    """A database an operator may restore into from the console, with its own secret (never
    the backup secret: a restore needs rights a backup must not have)."""

    name: str
    secret_arn: str
    sslmode: str = "verify-full"
    # A target that is itself a backup source (same name or secret as a configured database)
    # is refused unless this says so.
    allow_restore_over_source: bool = False


@dataclass(frozen=True)
class Database:
    name: str
    secret_arn: str
    vpc_id: str
    subnet_ids: tuple[str, ...]
    security_group_id: str
    schedules: dict[str, Schedule]
    retention: dict[str, int]
    verify_instance_class: str = "db.t4g.medium"
    # Per tier: also keep every backup younger than this many days (`{"count", "days"}`).
    retention_days: dict[str, int] = field(default_factory=dict)
    # Called (GET) after each verified backup: a dead-man's switch that pages when it stops.
    ping_url: str | None = None
    verify_storage_gb: int = 50
    checks: Checks = field(default_factory=Checks)
    task_cpu: int = 1024
    task_memory_mib: int = 4096
    rto_target_minutes: int = 60
    # Recovery point objective: how old the data a verified restore brings back may be
    # (default: the most frequent schedule plus VERIFY_SLACK_HOURS, 2280 for a daily one).
    rpo_target_minutes: int = 2280
    route_table_ids: tuple[str, ...] = ()
    sslmode: str = "verify-full"
    restore_targets: tuple[RestoreTarget, ...] = ()
    # How long a dump may wait for a locked table before it gives up naming the holder.
    lock_wait_timeout_minutes: int = 10
    # The source ends the backup's snapshot session when left idle this long (0: off).
    snapshot_idle_timeout_minutes: int = 0
    # The source's RDS instance: its own ways back (snapshots, point-in-time restores) can be
    # verified, on these schedules (each optional), and restored to a point in time from the
    # console.
    rds_instance_id: str | None = None
    verify_snapshots: Schedule | None = None
    verify_point_in_time: Schedule | None = None
    # An instance rather than one database: every database whose name matches this pattern
    # ("*", "app_*"), less `exclude_databases`, listed afresh at each backup and filed under
    # "<name>.<database>" (the secret's database is the one connected to, to list them).
    databases: str | None = None
    exclude_databases: tuple[str, ...] = ()

    def settings(self) -> dict[str, Any]:
        """What the workflows read at run time (stored as one SSM parameter per database)."""
        data = asdict(self)
        data["schedules"] = {t: asdict(s) for t, s in self.schedules.items()}
        data["checks"] = {
            "assertions": list(self.checks.assertions),
            "freshness": dict(self.checks.freshness),
        }
        data["subnet_ids"] = list(self.subnet_ids)
        data["route_table_ids"] = list(self.route_table_ids)
        data["restore_targets"] = [asdict(t) for t in self.restore_targets]
        data["exclude_databases"] = list(self.exclude_databases)
        return data


@dataclass(frozen=True)
class Network:
    """A VPC holding protected databases; endpoints let private subnets work with no NAT."""

    vpc_id: str
    subnet_ids: tuple[str, ...]
    route_table_ids: tuple[str, ...]
    vpc_endpoints: bool


@dataclass(frozen=True)
class Replica:
    """Where S3 replication copies every backup object: a versioned bucket in another region,
    its objects re-encrypted with that region's key."""

    bucket_arn: str
    region: str
    kms_key_arn: str


@dataclass(frozen=True)
class Config:
    deployment: str
    databases: tuple[Database, ...]
    alarm_emails: tuple[str, ...] = ()
    max_concurrent_verifications: int = 2
    object_lock_days: int = 0
    # Per tier, the S3 Object Lock every object of a backup is written under:
    # {"daily": ("GOVERNANCE", 7)}; the bucket is created with Object Lock when set.
    object_lock: dict[str, tuple[str, int]] = field(default_factory=dict)
    janitor_schedule: str = "cron(0 * * * ? *)"
    vpc_endpoints: bool = False
    # A Secrets Manager secret holding a Slack-compatible incoming webhook URL.
    chat_webhook_secret_arn: str | None = None
    # Also tell people about each verified backup (failures are always told).
    notify_success: bool = False
    # Replicate the backup bucket to a second region (None: no replication).
    replica: Replica | None = None

    @property
    def object_lock_spec(self) -> str:
        """The policy as the engine reads it (`BACKPROOF_OBJECT_LOCK`, `--object-lock`)."""
        return ",".join(f"{t}={mode}:{days}" for t, (mode, days) in self.object_lock.items())

    def networks(self) -> dict[str, Network]:
        """The distinct VPCs, with every configured subnet in each."""
        subnets: dict[str, list[str]] = {}
        routes: dict[str, list[str]] = {}
        for db in self.databases:
            for merged, ids in ((subnets, db.subnet_ids), (routes, db.route_table_ids)):
                bucket = merged.setdefault(db.vpc_id, [])
                bucket.extend(i for i in ids if i not in bucket)
        return {
            vpc: Network(vpc, tuple(s), tuple(routes[vpc]), self.vpc_endpoints)
            for vpc, s in subnets.items()
        }


def _schedule(value: Any, where: str) -> Schedule:
    sub = _Reader(value, where)
    zone = sub.get("time_zone", str, "UTC")
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise _fail(sub.where, "time_zone", f"is not an IANA time zone: {zone!r}") from exc
    schedule = Schedule(cron=sub.get("cron", str, pattern=CRON), time_zone=zone)
    sub.done()
    return schedule


def _schedules(reader: _Reader) -> dict[str, Schedule]:
    raw = reader.get("schedules", dict)
    if not raw:
        raise _fail(reader.where, "schedules", "must name at least one tier")
    result = {}
    for tier, value in raw.items():
        if tier not in TIERS:
            raise _fail(
                reader.where, f"schedules.{tier}", f"is not a tier; use one of {', '.join(TIERS)}"
            )
        result[tier] = _schedule(value, f"{reader.where} schedules.{tier}")
    return result


def _ways_back(reader: _Reader) -> tuple[str | None, Schedule | None, Schedule | None]:
    """The RDS instance and when its snapshots and point-in-time restores are verified."""
    instance = reader.get("rds_instance_id", str, None, pattern=RDS_INSTANCE_ID)
    found: list[Schedule | None] = []
    for name in ("verify_snapshots", "verify_point_in_time"):
        raw = reader.get(name, dict, None)
        if raw is not None and instance is None:
            raise _fail(reader.where, name, "needs rds_instance_id (the instance to restore)")
        found.append(None if raw is None else _schedule(raw, f"{reader.where} {name}"))
    return instance, found[0], found[1]


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _retention(
    reader: _Reader, tiers: dict[str, Schedule]
) -> tuple[dict[str, int], dict[str, int]]:
    """Per tier a count (`7`) or a count and an age window (`{"count": 7, "days": 30}`: keep
    at least 7, and everything younger than 30 days). Returns (counts, days)."""
    raw = reader.get("retention", dict)
    for tier in tiers:
        if tier not in raw:
            raise _fail(
                reader.where,
                f"retention.{tier}",
                "is missing (how many backups of this tier to keep)",
            )
    counts: dict[str, int] = {}
    days: dict[str, int] = {}
    for tier, value in raw.items():
        if tier not in TIERS:
            raise _fail(
                reader.where, f"retention.{tier}", f"is not a tier; use one of {', '.join(TIERS)}"
            )
        keep = value
        if isinstance(value, dict):
            sub = _Reader(value, f"{reader.where} retention.{tier}")
            keep, age = sub.get("count", int), sub.get("days", int, None)
            sub.done()
            if age is not None and not _whole(age, 1, MAX_RETENTION_DAYS):
                raise _fail(sub.where, "days", f"must be 1..{MAX_RETENTION_DAYS}, got {age!r}")
            if age is not None:
                days[tier] = age
        if not _whole(keep, 1, 10_000):
            raise _fail(
                reader.where,
                f"retention.{tier}",
                f'must be a whole number >= 1 or {{"count": N, "days": D}}, got {keep!r}',
            )
        counts[tier] = keep
    return counts, days


def _checks(reader: _Reader) -> Checks:
    sub = _Reader(reader.get("checks", dict, {}), f"{reader.where} checks")
    assertions = sub.get("assertions", list, [])
    for item in assertions:
        if not isinstance(item, str) or not item.strip():
            raise _fail(sub.where, "assertions", f"has an entry that is not SQL text: {item!r}")
    freshness = sub.get("freshness", dict, {})
    for column, age in freshness.items():
        if column.count(".") != 2:
            raise _fail(sub.where, f"freshness.{column}", "must name schema.table.column")
        if not isinstance(age, str) or not DURATION.match(age):
            raise _fail(sub.where, f"freshness.{column}", f"must be an age like '26h', got {age!r}")
    sub.done()
    return Checks(tuple(assertions), dict(freshness))


def _restore_targets(reader: _Reader) -> tuple[RestoreTarget, ...]:
    targets: list[RestoreTarget] = []
    for i, raw in enumerate(reader.get("restore_targets", list, [])):
        name = raw.get("name") if isinstance(raw, dict) else None
        sub = _Reader(raw, f"{reader.where} restore_targets[{name or i}]")
        target = RestoreTarget(
            name=sub.get("name", str, pattern=NAME),
            secret_arn=sub.get("secret_arn", str, pattern=SECRET_ARN),
            sslmode=_sslmode(sub),
            allow_restore_over_source=sub.get("allow_restore_over_source", bool, False),
        )
        sub.done()
        if any(t.name == target.name for t in targets):
            raise _fail(reader.where, "restore_targets", f"names {target.name!r} twice")
        targets.append(target)
    return tuple(targets)


def _check_restore_targets(databases: tuple[Database, ...]) -> None:
    """A restore target that is itself a backup source needs the explicit flag."""
    sources = {db.name: db for db in databases}
    secrets = {db.secret_arn: db for db in databases}
    for db in databases:
        for target in db.restore_targets:
            source = sources.get(target.name) or secrets.get(target.secret_arn)
            if source is not None and not target.allow_restore_over_source:
                raise _fail(
                    f"database {db.name!r} restore_targets[{target.name}]",
                    "allow_restore_over_source",
                    f"must be true to allow restoring over {source.name!r}, which is itself "
                    "backed up (a restore would replace the data its backups protect)",
                )


def _sslmode(reader: _Reader) -> str:
    mode = reader.get("sslmode", str, "verify-full")
    if mode not in SSLMODES:
        raise _fail(reader.where, "sslmode", f"must be one of {', '.join(SSLMODES)}, got {mode!r}")
    return str(mode)


def _database(raw: Any, index: int) -> Database:
    name = raw.get("name") if isinstance(raw, dict) else None
    reader = _Reader(raw, f"database {name!r}" if name else f"databases[{index}]")
    name = reader.get("name", str, pattern=NAME)
    schedules = _schedules(reader)
    cpu = reader.get("task_cpu", int, 1024)
    memory = reader.get("task_memory_mib", int, 4096)
    if cpu not in FARGATE_MEMORY:
        raise _fail(reader.where, "task_cpu", f"must be one of {sorted(FARGATE_MEMORY)}, got {cpu}")
    if memory not in FARGATE_MEMORY[cpu]:
        raise _fail(reader.where, "task_memory_mib", f"{memory} is not valid with task_cpu {cpu}")
    storage = reader.get("verify_storage_gb", int, 50)
    rds_instance_id, verify_snapshots, verify_point_in_time = _ways_back(reader)
    retention, retention_days = _retention(reader, schedules)
    if not 20 <= storage <= 65536:
        raise _fail(reader.where, "verify_storage_gb", f"must be 20..65536, got {storage}")
    db = Database(
        name=name,
        secret_arn=reader.get("secret_arn", str, pattern=SECRET_ARN),
        vpc_id=reader.get("vpc_id", str, pattern=VPC_ID),
        subnet_ids=reader.strings("subnet_ids", SUBNET_ID),
        security_group_id=reader.get("security_group_id", str, pattern=SG_ID),
        schedules=schedules,
        retention=retention,
        retention_days=retention_days,
        ping_url=reader.get("ping_url", str, None, pattern=PING_URL),
        verify_instance_class=reader.get(
            "verify_instance_class", str, "db.t4g.medium", pattern=INSTANCE_CLASS
        ),
        verify_storage_gb=storage,
        checks=_checks(reader),
        task_cpu=cpu,
        task_memory_mib=memory,
        rto_target_minutes=reader.get("rto_target_minutes", int, 60),
        rpo_target_minutes=reader.get(
            "rpo_target_minutes",
            int,
            (min(TIER_HOURS[t] for t in schedules) + VERIFY_SLACK_HOURS) * 60,
        ),
        route_table_ids=reader.strings("route_table_ids", ROUTE_TABLE_ID, [], non_empty=False),
        sslmode=_sslmode(reader),
        restore_targets=_restore_targets(reader),
        lock_wait_timeout_minutes=reader.get("lock_wait_timeout_minutes", int, 10),
        snapshot_idle_timeout_minutes=reader.get("snapshot_idle_timeout_minutes", int, 0),
        rds_instance_id=rds_instance_id,
        verify_snapshots=verify_snapshots,
        verify_point_in_time=verify_point_in_time,
        databases=reader.get("databases", str, None, pattern=DATABASE_PATTERN),
        exclude_databases=reader.strings(
            "exclude_databases", DATABASE_PATTERN, [], non_empty=False
        ),
    )
    reader.done()
    if db.exclude_databases and db.databases is None:
        raise _fail(
            reader.where,
            "exclude_databases",
            "applies to an instance: set 'databases' (a pattern such as \"*\") as well",
        )
    for target in ("rto_target_minutes", "rpo_target_minutes"):
        if getattr(db, target) <= 0:
            raise _fail(
                reader.where,
                target,
                f"must be a positive number of minutes, got {getattr(db, target)}",
            )
    if not 0 <= db.snapshot_idle_timeout_minutes <= 1440:
        raise _fail(
            reader.where,
            "snapshot_idle_timeout_minutes",
            f"must be 0 (off) to 1440, got {db.snapshot_idle_timeout_minutes}",
        )
    if not 0 <= db.lock_wait_timeout_minutes <= 1440:
        raise _fail(
            reader.where,
            "lock_wait_timeout_minutes",
            f"must be 0 (wait forever) to 1440, got {db.lock_wait_timeout_minutes}",
        )
    if len(db.subnet_ids) < 2:
        raise _fail(
            reader.where,
            "subnet_ids",
            "needs subnets in at least two availability zones (RDS subnet groups require it)",
        )
    if len(json.dumps(db.settings())) > SSM_STANDARD_LIMIT - 512:
        raise _fail(
            reader.where,
            "checks",
            "makes the settings too large for one SSM parameter; shorten the assertions",
        )
    return db


def _object_lock(raw: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """`{"daily": {"mode": "GOVERNANCE", "days": 7}, ...}` per tier (safety too)."""
    tiers = {}
    for tier, value in raw.items():
        reader = _Reader(value, "deployment")
        where = f"object_lock.{tier}"
        if tier not in (*TIERS, "safety"):
            raise _fail("deployment", where, f"is not a tier; use one of {', '.join(TIERS)}")
        mode = reader.get("mode", str)
        days = reader.get("days", int)
        reader.done()
        if mode not in ("GOVERNANCE", "COMPLIANCE"):
            raise _fail(
                "deployment", f"{where}.mode", f"must be GOVERNANCE or COMPLIANCE, got {mode!r}"
            )
        if not 1 <= days <= 36500:
            raise _fail("deployment", f"{where}.days", f"must be 1..36500, got {days}")
        tiers[tier] = (mode, days)
    return tiers


def _replica(raw: Any) -> Replica | None:
    """`{"bucket_arn", "region", "kms_key_arn"}`: the key must live in the replica's region."""
    if raw is None:
        return None
    reader = _Reader(raw, "deployment replica")
    replica = Replica(
        bucket_arn=reader.get("bucket_arn", str, pattern=BUCKET_ARN),
        region=reader.get("region", str, pattern=REGION),
        kms_key_arn=reader.get("kms_key_arn", str, pattern=KMS_KEY_ARN),
    )
    reader.done()
    key_region = KMS_KEY_ARN.match(replica.kms_key_arn).group(1)  # type: ignore[union-attr]
    if key_region != replica.region:
        raise _fail(
            reader.where,
            "kms_key_arn",
            f"is a key in {key_region}, not in the replica's region {replica.region} "
            "(S3 replication encrypts with a key in the destination's region)",
        )
    return replica


def load(raw: Any) -> Config:
    """Validate the `backproof` context object (or the file named by `config_file`)."""
    if raw is None:
        raise ConfigError("backproof config: context key 'backproof' is missing from cdk.json")
    if isinstance(raw, str):  # a path to a JSON file, relative to the working directory
        raw = json.loads(Path(raw).read_text())
    reader = _Reader(raw, "deployment")
    deployment = reader.get("deployment", str, pattern=NAME)
    raw_dbs = reader.get("databases", list)
    if not raw_dbs:
        raise _fail("deployment", "databases", "must list at least one database")
    databases = tuple(_database(item, i) for i, item in enumerate(raw_dbs))
    _check_restore_targets(databases)
    names = [db.name for db in databases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _fail(f"database {duplicates[0]!r}", "name", "is used by more than one database")
    concurrency = reader.get("max_concurrent_verifications", int, 2)
    if not 1 <= concurrency <= 40:
        raise _fail(
            "deployment",
            "max_concurrent_verifications",
            f"must be 1..40 (RDS instance quota), got {concurrency}",
        )
    lock_days = reader.get("object_lock_days", int, 0)
    if lock_days < 0:
        raise _fail("deployment", "object_lock_days", "must be 0 (off) or a number of days")
    object_lock = _object_lock(reader.get("object_lock", dict, {}))
    endpoints = reader.get("vpc_endpoints", bool, False)
    for db in databases:
        if endpoints and not db.route_table_ids:
            raise _fail(
                f"database {db.name!r}",
                "route_table_ids",
                "is needed when vpc_endpoints is on (for the S3 gateway endpoint)",
            )
    config = Config(
        deployment=deployment,
        databases=databases,
        alarm_emails=reader.strings("alarm_emails", EMAIL, [], non_empty=False),
        max_concurrent_verifications=concurrency,
        object_lock_days=lock_days,
        object_lock=object_lock,
        janitor_schedule=reader.get("janitor_schedule", str, "cron(0 * * * ? *)", pattern=CRON),
        vpc_endpoints=endpoints,
        chat_webhook_secret_arn=reader.get(
            "chat_webhook_secret_arn", str, None, pattern=SECRET_ARN
        ),
        notify_success=reader.get("notify_success", bool, False),
        replica=_replica(reader.get("replica", dict, None)),
    )
    reader.done()
    return config
