#!/usr/bin/env python3
"""Benchmark `backproof backup --jobs N` and `backproof verify` against the hand-built pipeline.

For each size in --sizes (GB of pg_database_size, default 1 and 4), one multi-table database
is generated server-side in an ephemeral local cluster (one large table of ~40%, four medium
ones, forty small ones; ints, text, timestamps, numeric, jsonb), then, each timed as its own
process tree with its peak RSS sampled (bench_backup.measure), to moto_server on loopback:

  hand         pg_dump -Fc -Z0 | zstd -1 | a boto3 upload_fileobj (multipart, default config)
  backproof    backup --no-fingerprints --jobs 1, --no-fingerprints --jobs 2,
               --jobs 1, --jobs 2 (fingerprints on)
  verify       backproof verify --jobs 2 of the last fingerprinted --jobs 2 backup
  bare         download of the hand archive | zstd -d > file, a fresh local cluster with
               verify's settings, pg_restore -j 2, teardown

Every timed run is repeated --repeat times (rounds interleave the variants); the table shows
the median wall time and the highest peak RSS. Targets of the issue are printed PASS/MISS.

Run:  .venv/bin/python bench/bench_parallel.py [--sizes 1,4] [--repeat 1]
      [--keep-cluster /tmp/bench-parallel-pg]     (keeps the generated databases for next time)
Results: the table on stdout, everything as JSON in .cache/bench/parallel-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import pwd
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from backproof import __version__ as backproof_version
from backproof.jobs.verify import LOCAL_RESTORE_SETTINGS
from backproof.pg import cluster as cluster_mod
from backproof.pg.cluster import InitDb, LocalCluster
from backproof.pg.programs import find_program

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_backup as bb  # shared measuring, endpoint and S3 helpers

REPO = bb.REPO
RESULTS = REPO / ".cache" / "bench"
GB = 1_000_000_000
MB = bb.MB
JOBS_VERIFY = 2
# Bumped whenever the generated data changes, so a kept cluster's databases are rebuilt.
DATASET_VERSION = 1

# Targets of the issue.
NOFP_VS_HAND = 1.05
FP_VS_HAND = 1.25
SCALING = 1.10
RSS_LIMIT_MB = 200


# -- the data set ----------------------------------------------------------------------------


def _words(expr: str) -> str:
    """Pseudo-text from an md5: letters in roughly English frequency, with spaces."""
    return f"translate({expr}, '0123456789abcdef', 'etaoin shrdlucmw')"


@dataclass(frozen=True)
class TableSpec:
    name: str
    share: float  # of the database's target size (table, TOAST and indexes)
    ddl: str  # CREATE TABLE {name} (...)
    select: str  # SELECT ... FROM generate_series({lo}, {hi}) AS i
    key: str  # primary key columns


def _table_specs() -> list[TableSpec]:
    events = TableSpec(
        "events",
        0.40,
        "id bigint NOT NULL, account_id integer NOT NULL, created_at timestamptz NOT NULL,"
        " kind text NOT NULL, amount numeric(12,2), payload jsonb NOT NULL, note text",
        "SELECT i, 1 + (random() * 199999)::int,"
        " timestamptz '2023-01-01 00:00:00+00' + i * interval '1.7 second',"
        " (ARRAY['page_view','click','search','login','logout','signup','purchase','refund'])"
        "[1 + floor(random() * random() * 8)::int],"
        " CASE WHEN random() < 0.3 THEN round((random() * 500)::numeric, 2) END,"
        " jsonb_build_object('ip', concat_ws('.', 10, (random() * 255)::int,"
        " (random() * 255)::int, (random() * 255)::int), 'session', md5((i / 20)::text),"
        " 'path', '/' || translate(substr(md5((i % 5000)::text), 1, 14),"
        " '0123456789abcdef', 'abcdefghij/klmno'), 'ms', (random() * 2000)::int,"
        " 'ok', random() < 0.97),"
        f" CASE WHEN random() < 0.4 THEN {_words('md5(i::text || $$n$$) || md5(i::text)')} END"
        " FROM generate_series({lo}, {hi}) AS i",
        "id",
    )
    orders = TableSpec(
        "orders",
        0.15,
        "id bigint NOT NULL, customer_id integer NOT NULL, status text NOT NULL,"
        " currency char(3) NOT NULL, total numeric(12,2) NOT NULL,"
        " created_at timestamptz NOT NULL, shipped_at timestamptz, shipping_address text,"
        " notes text",
        "SELECT i, 1 + (random() * 99999)::int,"
        " (ARRAY['new','paid','shipped','delivered','cancelled','returned'])"
        "[1 + floor(random() * 6)::int],"
        " (ARRAY['EUR','USD','GBP','SEK'])[1 + floor(random() * 4)::int],"
        " round((random() * 2000)::numeric, 2), t.ts,"
        " CASE WHEN random() < 0.7 THEN t.ts + random() * interval '5 days' END,"
        " (random() * 9999)::int || ' '"
        f" || initcap({_words('substr(md5(i::text), 1, 12)')}) || ' Street, '"
        " || (ARRAY['Berlin','Paris','Lyon','Leeds','Oslo','Turin','Porto','Graz'])"
        "[1 + floor(random() * 8)::int],"
        f" CASE WHEN random() < 0.3 THEN {_words('md5(i::text || $$o$$)')} END"
        " FROM generate_series({lo}, {hi}) AS i,"
        " LATERAL (SELECT timestamptz '2023-01-01 00:00:00+00' + i * interval '20 second'"
        " AS ts) AS t",
        "id",
    )
    audit = TableSpec(
        "audit_log",
        0.12,
        "id bigint NOT NULL, at timestamptz NOT NULL, actor integer NOT NULL,"
        " action text NOT NULL, object_type text NOT NULL, object_id bigint NOT NULL,"
        " detail jsonb NOT NULL",
        "SELECT i, timestamptz '2023-01-01 00:00:00+00' + i * interval '9 second',"
        " 1 + (random() * 500)::int,"
        " (ARRAY['create','update','update','update','delete','export'])"
        "[1 + floor(random() * 6)::int],"
        " (ARRAY['order','customer','invoice','product'])[1 + floor(random() * 4)::int],"
        " (random() * 5000000)::bigint,"
        " jsonb_build_object('request_id', md5(i::text || 'r'),"
        " 'client', (ARRAY['web','ios','android','api'])[1 + floor(random() * 4)::int],"
        " 'before', jsonb_build_object('status', 'paid', 'total',"
        " round((random() * 900)::numeric, 2)),"
        " 'after', jsonb_build_object('status', 'shipped', 'total',"
        " round((random() * 900)::numeric, 2), 'carrier',"
        " (ARRAY['DHL','UPS','PostNord','Colissimo'])[1 + floor(random() * 4)::int]),"
        f" 'comment', {_words('substr(md5(i::text || $$c$$), 1, (random() * 32)::int)')})"
        " FROM generate_series({lo}, {hi}) AS i",
        "id",
    )
    customers = TableSpec(
        "customers",
        0.10,
        "id bigint NOT NULL, name text NOT NULL, email text NOT NULL, country char(2),"
        " created_at timestamptz NOT NULL, balance numeric(14,2) NOT NULL, tier smallint,"
        " bio text, prefs jsonb",
        f"SELECT i, initcap({_words('substr(md5(i::text), 1, 7)')}) || ' '"
        f" || initcap({_words('substr(md5(i::text), 8, 10)')}),"
        " 'user' || i || '@example.' || (ARRAY['com','org','net','de'])"
        "[1 + floor(random() * 4)::int],"
        " (ARRAY['DE','FR','GB','SE','IT','PT','AT','US'])[1 + floor(random() * 8)::int],"
        " timestamptz '2019-01-01 00:00:00+00' + i * interval '61 second',"
        " round((random() * 10000 - 2000)::numeric, 2), (random() * 3)::smallint,"
        f" {_words('md5(i::text || $$a$$) || md5(i::text || $$b$$) || md5(i::text || $$c$$)')},"
        " CASE WHEN random() < 0.6 THEN jsonb_build_object('lang',"
        " (ARRAY['en','de','fr','sv'])[1 + floor(random() * 4)::int],"
        " 'newsletter', random() < 0.5, 'theme', (ARRAY['light','dark'])"
        "[1 + floor(random() * 2)::int]) END"
        " FROM generate_series({lo}, {hi}) AS i",
        "id",
    )
    items = TableSpec(
        "line_items",
        0.11,
        "order_id bigint NOT NULL, line smallint NOT NULL, sku text NOT NULL,"
        " quantity integer NOT NULL, unit_price numeric(10,2) NOT NULL, discount numeric(4,2)",
        "SELECT 1 + i / 4, (i % 4 + 1)::smallint,"
        " 'SKU-' || lpad(((random() * 50000)::int)::text, 6, '0'), 1 + (random() * 9)::int,"
        " round((random() * 300)::numeric, 2),"
        " CASE WHEN random() < 0.2 THEN round((random() * 30)::numeric, 2) END"
        " FROM generate_series({lo}, {hi}) AS i",
        "order_id, line",
    )
    specs = [events, orders, audit, customers, items]
    # Forty small tables sharing 12%, from ~0.05% to ~0.9% each.
    weights = [1.08**k for k in range(40)]
    for k, w in enumerate(weights):
        nn = f"{k:02d}"
        specs.append(
            TableSpec(
                f"ref_{nn}",
                0.12 * w / sum(weights),
                "id integer NOT NULL, code text NOT NULL, label text NOT NULL,"
                " value numeric(12,3), active boolean NOT NULL, updated_at timestamptz NOT NULL,"
                " attrs jsonb",
                f"SELECT i, 'R{nn}-' || lpad(i::text, 7, '0'),"
                f" initcap({_words(f'md5(i::text || $${nn}$$)')}),"
                " round((random() * 10000)::numeric, 3), random() < 0.9,"
                " timestamptz '2024-01-01 00:00:00+00' + i * interval '37 second',"
                " CASE WHEN random() < 0.5 THEN jsonb_build_object('source',"
                " (ARRAY['import','api','manual'])[1 + floor(random() * 3)::int],"
                " 'weight', (random() * 100)::int) END"
                " FROM generate_series({lo}, {hi}) AS i",
                "id",
            )
        )
    return specs


SAMPLE_ROWS = 5000
BATCH_ROWS = 1_000_000


def _build_table(conn: psycopg.Connection[Any], spec: TableSpec, target_bytes: int) -> int:
    """Create and fill one table to about target_bytes (heap + indexes); returns its rows.

    A sample (with its primary key) gives the bytes per row; the rest is loaded without the
    index, which is built at the end."""
    name = sql.Identifier(spec.name)
    seed = int(hashlib.sha256(spec.name.encode()).hexdigest()[:8], 16) / 2**32
    conn.execute("SELECT setseed(%s)", [seed])
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
    conn.execute(sql.SQL("CREATE TABLE {} (" + spec.ddl + ")").format(name))
    select = spec.select.replace("%", "%%")
    select = select.replace("{lo}", "%s::bigint").replace("{hi}", "%s::bigint")
    insert = "INSERT INTO {} " + select
    conn.execute(sql.SQL(insert).format(name), [1, SAMPLE_ROWS])
    pk = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (" + spec.key + ")").format(
        name, sql.Identifier(f"{spec.name}_pkey")
    )
    conn.execute(pk)
    row = conn.execute("SELECT pg_total_relation_size(%s::regclass)", [spec.name]).fetchone()
    assert row is not None
    rows = max(SAMPLE_ROWS, round(target_bytes / (int(row[0]) / SAMPLE_ROWS)))
    if rows > SAMPLE_ROWS:
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                name, sql.Identifier(f"{spec.name}_pkey")
            )
        )
        for lo in range(SAMPLE_ROWS + 1, rows + 1, BATCH_ROWS):
            conn.execute(sql.SQL(insert).format(name), [lo, min(rows, lo + BATCH_ROWS - 1)])
        conn.execute(pk)
    conn.execute(sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(name))
    return rows


def marker(size_gb: float) -> str:
    return f"bench_parallel dataset v{DATASET_VERSION}, {size_gb:g} GB"


def db_name(size_gb: float) -> str:
    return "par_" + f"{size_gb:g}".replace(".", "_") + "gb"


def ensure_database(cluster: Any, size_gb: float, loaders: int = 2) -> dict[str, Any]:
    """The database of that size, built (with `loaders` connections) unless the cluster
    already holds one built the same way (--keep-cluster)."""
    db = db_name(size_gb)
    with psycopg.connect(**cluster.connect_kwargs(), autocommit=True) as admin:
        row = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [db],
        ).fetchone()
        if row is not None and row[0] == marker(size_gb):
            bb.log(f"{db}: reusing the database built by an earlier run")
            return {"db": db, "built_s": None, **describe(cluster, db)}
        if row is not None:
            admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(db)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    target = size_gb * GB
    specs = sorted(_table_specs(), key=lambda s: -s.share)
    todo: queue.Queue[TableSpec] = queue.Queue()
    for spec in specs:
        todo.put(spec)
    errors: list[BaseException] = []
    rows: dict[str, int] = {}

    def loader() -> None:
        try:
            with psycopg.connect(**cluster.connect_kwargs(db), autocommit=True) as conn:
                conn.execute("SET maintenance_work_mem = '512MB'")
                while not errors:
                    try:
                        spec = todo.get_nowait()
                    except queue.Empty:
                        return
                    t0 = time.monotonic()
                    rows[spec.name] = _build_table(conn, spec, int(target * spec.share))
                    if spec.share >= 0.05:
                        bb.log(
                            f"    {spec.name}: {rows[spec.name]:,} rows in "
                            f"{time.monotonic() - t0:.0f}s"
                        )
        except BaseException as exc:
            errors.append(exc)

    bb.log(f"{db}: generating about {size_gb:g} GB in {len(specs)} tables")
    t0 = time.monotonic()
    threads = [threading.Thread(target=loader, daemon=True) for _ in range(loaders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    with psycopg.connect(**cluster.connect_kwargs(), autocommit=True) as admin:
        admin.execute("CHECKPOINT")
        admin.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(db), sql.Literal(marker(size_gb))
            )
        )
    built = time.monotonic() - t0
    info = {"db": db, "built_s": round(built, 1), **describe(cluster, db)}
    bb.log(f"{db}: built in {built:.0f}s, pg_database_size {info['database_bytes'] / GB:.2f} GB")
    return info


def warm_cache(cluster: Any, db: str) -> float:
    """Read every file of the database once (untimed), so that the first variant does not pay
    for disk reads the others do not (a kept cluster's database may have left the page cache)."""
    with psycopg.connect(**cluster.connect_kwargs(db)) as conn:
        row = conn.execute("SELECT oid FROM pg_database WHERE datname = %s", [db]).fetchone()
    assert row is not None
    t0 = time.monotonic()
    for path in (cluster.datadir / "base" / str(row[0])).iterdir():
        with path.open("rb") as f:
            while f.read(8 << 20):
                pass
    return time.monotonic() - t0


def describe(cluster: Any, db: str) -> dict[str, Any]:
    with psycopg.connect(**cluster.connect_kwargs(db)) as conn:
        row = conn.execute(
            "SELECT pg_database_size(current_database()), count(*),"
            " sum(pg_table_size(c.oid)), sum(pg_indexes_size(c.oid)), sum(c.reltuples)"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname = 'public'"
        ).fetchone()
        assert row is not None
        largest = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY 2 DESC LIMIT 5"
        ).fetchall()
    return {
        "database_bytes": int(row[0]),
        "tables": int(row[1]),
        "table_data_bytes": int(row[2] or 0),
        "index_bytes": int(row[3] or 0),
        "rows": int(row[4] or 0),
        "largest": {str(n): int(b) for n, b in largest},
    }


# -- a cluster that outlives the run (--keep-cluster) ---------------------------------------


@dataclass
class KeptCluster(LocalCluster):
    """The engine's LocalCluster, in a directory that is kept: initdb'd on first use, started
    again (same password) on the next; stopped cleanly, never deleted."""

    keep: Path = field(default_factory=Path)

    def start(self) -> KeptCluster:
        self.server = find_program("initdb", min_major=0, purpose="the bench's source cluster")
        user = cluster_mod._run_as_user()  # the engine's own rule for root
        owner = pwd.getpwnam(user) if user else None
        d = self.keep.resolve()
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)
        self.workdir = d
        secret = d / "bench-password"
        if owner:
            os.chown(d, owner.pw_uid, owner.pw_gid)
        if (d / "data" / "PG_VERSION").exists():
            self.password = secret.read_text().strip()
        else:
            pwfile = d / "pw"
            pwfile.write_text(self.password + "\n")
            pwfile.chmod(0o600)
            if owner:
                os.chown(pwfile, owner.pw_uid, owner.pw_gid)
            self._run(InitDb(self.server, self.datadir, self.superuser, pwfile).argv)
            pwfile.unlink()
            secret.write_text(self.password + "\n")
            secret.chmod(0o600)
        self._start_server()
        return self

    def stop(self) -> None:
        if self._running and self.server is not None:
            pg_ctl = str(self.server.bin_dir / "pg_ctl")
            self._run([pg_ctl, "-D", str(self.datadir), "-m", "fast", "-w", "stop"], check=False)
            self._running = False


# -- memory: bench_backup's sampler, plus private memory and who held the peak -------------


def _rss_anon(pid: int) -> int:
    """Private resident memory of one process (RssAnon: no mapped file pages, no shared memory)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:  # noqa: PTH123 - hot loop
            for line in f:
                if line.startswith(b"RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _procs() -> dict[int, tuple[int, int, int, bytes]]:
    """pid -> (ppid, rss bytes, vsize, comm) for every process, from /proc/<pid>/stat."""
    table: dict[int, tuple[int, int, int, bytes]] = {}
    for name in os.listdir("/proc"):  # noqa: PTH208 - hot loop
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:  # noqa: PTH123 - hot loop
                stat = f.read()
        except OSError:
            continue
        close = stat.rfind(b")")
        fields = stat[close + 2 :].split()
        # fields[1] ppid, [20] vsize (bytes), [21] rss (pages)
        comm = stat[stat.find(b"(") + 1 : close]
        table[int(name)] = (int(fields[1]), int(fields[21]) * bb.PAGE, int(fields[20]), comm)
    return table


# Server processes: a local instance's postmaster is the child of `pg_ctl start -w` until
# pg_ctl returns, and would otherwise be counted while it starts. The servers are not counted
# (as in bench_backup: neither the source's backends nor a restore server).
NOT_COUNTED = {b"postgres"}


class TreeSampler(bb.TreeSampler):
    """bench_backup's sampler (peak of the summed RSS of the tree, every 50 ms), with:

    - a child that has not exec'd yet (same name, size and RSS as its parent: Python's
      subprocess vforks, so for a moment the child *is* the parent's memory) is not counted
      again; bench_backup's sampler occasionally adds a second copy of backproof that way;
    - PostgreSQL server processes (NOT_COUNTED) are left out;
    - the peak of the summed RssAnon (memory the processes hold themselves: RSS also counts
      pages of files they map, e.g. an archive read through mmap, which the kernel can drop);
    - the largest processes at the RSS peak.

    Installed in bench_backup in place of its own, so bb.measure() uses it; `last` is the
    latest one started."""

    last: TreeSampler | None = None

    def __init__(self, root: int) -> None:
        super().__init__(root)
        self.anon_peak = 0
        self.peak_who: list[tuple[str, int]] = []
        TreeSampler.last = self

    def run(self) -> None:
        while not self._done.is_set():
            table = _procs()
            children: dict[int, list[int]] = {}
            for pid, row in table.items():
                children.setdefault(row[0], []).append(pid)
            pids, todo = [], list(children.get(self.root, []))
            while todo:
                pid = todo.pop()
                todo.extend(children.get(pid, []))
                ppid, rss, vsize, comm = table[pid]
                parent = table.get(ppid)
                if comm in NOT_COUNTED or (parent and parent[1:] == (rss, vsize, comm)):
                    continue
                pids.append(pid)
            total = sum(table[p][1] for p in pids)
            self.anon_peak = max(self.anon_peak, sum(_rss_anon(p) for p in pids))
            if total > self.peak:
                self.peak, self.peak_procs = total, len(pids)
                top = sorted(pids, key=lambda p: -table[p][1])[:4]
                self.peak_who = [(table[p][3].decode(errors="replace"), table[p][1]) for p in top]
            self._done.wait(bb.SAMPLE_S)


bb.TreeSampler = TreeSampler  # type: ignore[misc]


# -- the timed runs ----------------------------------------------------------------------------

HAND = "hand"
VARIANTS = {  # key -> (label, extra backproof backup arguments)
    "nofp-j1": ("backproof --no-fingerprints --jobs 1", ["--no-fingerprints", "--jobs", "1"]),
    "nofp-j2": ("backproof --no-fingerprints --jobs 2", ["--no-fingerprints", "--jobs", "2"]),
    "fp-j1": ("backproof --jobs 1 (fingerprints)", ["--jobs", "1"]),
    "fp-j2": ("backproof --jobs 2 (fingerprints)", ["--jobs", "2"]),
}
VERIFY, BARE = "verify-j2", "bare-j2"
LABELS = {
    HAND: "hand: pg_dump -Fc -Z0 | zstd -1 | upload",
    **{k: v[0] for k, v in VARIANTS.items()},
    VERIFY: f"backproof verify --jobs {JOBS_VERIFY}",
    BARE: f"bare: get | zstd -d; pg_restore -j {JOBS_VERIFY}",
}
BACKUPS = [HAND, *VARIANTS]
RESTORES = [VERIFY, BARE]

UPLOADER = (
    "import sys, boto3\n"
    "boto3.client('s3').upload_fileobj(sys.stdin.buffer, sys.argv[1], sys.argv[2])\n"
)


@dataclass
class Sample:
    size: str
    variant: str
    round: int
    ok: bool
    wall_s: float
    tree_rss_bytes: int
    max1_rss_bytes: int
    anon_bytes: int = 0  # peak of the summed RssAnon of the tree
    peak_who: list[tuple[str, int]] = field(default_factory=list)  # largest at the RSS peak
    stored_bytes: int | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)


def _sample(size: str, variant: str, n: int, run: bb.Run, ok: bool, **kw: Any) -> Sample:
    detail = kw.pop("detail", {})
    sampler = TreeSampler.last
    if not ok:
        detail["stderr"] = run.stderr[-2000:]
        detail["rc"] = run.rc
    return Sample(
        size,
        variant,
        n,
        ok,
        round(run.wall, 2),
        run.tree_bytes,
        run.max1_bytes,
        anon_bytes=sampler.anon_peak if sampler else 0,
        peak_who=sampler.peak_who if sampler else [],
        cpu=run.cpu,
        detail=detail,
        **kw,
    )


def delete_prefix(s3: Any, prefix: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bb.BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=bb.BUCKET, Key=obj["Key"])
    for up in s3.list_multipart_uploads(Bucket=bb.BUCKET, Prefix=prefix).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bb.BUCKET, Key=up["Key"], UploadId=up["UploadId"])


def run_hand(size: str, n: int, db: str, pg_dump: Path, *, env: dict[str, str], s3: Any) -> Sample:
    key = f"hand/{size}/dump.custom.zst"
    delete_prefix(s3, f"hand/{size}/")
    script = (
        'set -o pipefail; "$PG_DUMP" -Fc -Z0 --no-password -d "$DB" | zstd -q -1 -c'
        ' | "$PY" -c "$UPLOADER" "$BUCKET" "$KEY"'
    )
    run = bb.measure(
        ["bash", "-c", script],
        {
            **env,
            "PG_DUMP": str(pg_dump),
            "DB": db,
            "PY": sys.executable,
            "UPLOADER": UPLOADER,
            "BUCKET": bb.BUCKET,
            "KEY": key,
        },
    )
    stored = None
    if run.rc == 0:
        stored = int(s3.head_object(Bucket=bb.BUCKET, Key=key)["ContentLength"])
    return _sample(size, HAND, n, run, run.rc == 0, stored_bytes=stored, detail={"key": key})


def run_backproof(
    size: str, n: int, variant: str, *, url: str, env: dict[str, str], s3: Any, store: str
) -> Sample:
    argv = [
        str(bb.VENV_BIN / "backproof"),
        "backup",
        "--source-url",
        url,
        "--store",
        store,
        "--database-name",
        "bench",
        "--json",
        *VARIANTS[variant][1],
    ]
    run = bb.measure(argv, env)
    detail: dict[str, Any] = {"argv": argv[1:], "store": store}
    stored = None
    if run.rc == 0:
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        manifest = json.loads(
            s3.get_object(Bucket=bb.BUCKET, Key=summary["manifest_key"])["Body"].read()
        )
        archive = manifest["archive"]
        parts = archive.get("parts") or []
        stored = int(summary["size"])
        detail.update(
            backup_id=summary["backup_id"],
            timings=manifest.get("timings"),
            dump_options=manifest.get("dump_options"),
            raw_bytes=int(archive.get("raw_size") or 0) + sum(int(p["raw_size"]) for p in parts),
            archives=[
                {"size": archive["size"], "raw_size": archive.get("raw_size")},
                *[
                    {"size": p["size"], "raw_size": p["raw_size"], "tables": len(p["tables"])}
                    for p in parts
                ],
            ],
        )
    return _sample(size, variant, n, run, run.rc == 0, stored_bytes=stored, detail=detail)


def run_verify(size: str, n: int, backup_id: str, store: str, env: dict[str, str]) -> Sample:
    argv = [
        str(bb.VENV_BIN / "backproof"),
        "verify",
        backup_id,
        "--store",
        store,
        "--database-name",
        "bench",
        "--jobs",
        str(JOBS_VERIFY),
        "--json",
    ]
    run = bb.measure(argv, env)
    detail: dict[str, Any] = {"argv": argv[1:]}
    ok = False
    if run.rc in (0, 1) and run.stdout.strip():
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        detail.update(
            verdict=summary["verdict"],
            timings=summary["timings"],
            failed_checks=summary["failed_checks"],
            error=summary.get("error"),
        )
        ok = run.rc == 0 and summary["verdict"] == "verified"
    return _sample(size, VERIFY, n, run, ok, detail=detail)


def run_bare(size: str, n: int, key: str, env: dict[str, str]) -> Sample:
    argv = [sys.executable, str(Path(__file__).resolve()), "_bare", bb.BUCKET, key]
    run = bb.measure([*argv, "--jobs", str(JOBS_VERIFY)], env)
    detail: dict[str, Any] = {}
    if run.rc == 0:
        detail["timings"] = json.loads(run.stdout.strip().splitlines()[-1])
    return _sample(size, BARE, n, run, run.rc == 0, detail=detail)


def bare_restore(bucket: str, key: str, jobs: int) -> int:
    """Inside the measured process: what a user's restore script does with the hand archive.
    Download piped through `zstd -d` to a file, a fresh cluster with verify's settings,
    `pg_restore -j`, teardown. Prints its step times as JSON."""
    import boto3  # noqa: PLC0415 - only the helper process needs it here

    t: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-bare-") as tmp:
        dump = Path(tmp) / "dump.custom"
        t0 = time.monotonic()
        with dump.open("wb") as out:
            zstd = subprocess.Popen(["zstd", "-q", "-d", "-c"], stdin=subprocess.PIPE, stdout=out)
            assert zstd.stdin is not None
            boto3.client("s3").download_fileobj(bucket, key, zstd.stdin)
            zstd.stdin.close()
            if zstd.wait() != 0:
                return 1
        t["download_decompress_seconds"] = round(time.monotonic() - t0, 3)
        t1 = time.monotonic()
        cluster = LocalCluster(name="bench-bare", settings=dict(LOCAL_RESTORE_SETTINGS))
        with cluster:
            cluster.create_database("restored")
            t["instance_seconds"] = round(time.monotonic() - t1, 3)
            t2 = time.monotonic()
            assert cluster.server is not None
            rc = subprocess.run(
                [
                    str(cluster.server.bin_dir / "pg_restore"),
                    f"--jobs={jobs}",
                    "--no-owner",
                    "--no-privileges",
                    "--dbname=restored",
                    str(dump),
                ],
                env={**os.environ, **cluster.env()},
                check=False,
            ).returncode
            t["restore_seconds"] = round(time.monotonic() - t2, 3)
            t3 = time.monotonic()
        t["teardown_seconds"] = round(time.monotonic() - t3, 3)
        t["archive_bytes"] = dump.stat().st_size
    print(json.dumps(t))
    return rc


# -- report --------------------------------------------------------------------------------------


@dataclass
class Cell:
    """The median of a variant's runs at one size, with the highest peak RSS."""

    size: str
    variant: str
    ok: bool
    wall_s: float
    walls: list[float]
    tree_rss_bytes: int
    max1_rss_bytes: int
    anon_bytes: int
    peak_who: list[tuple[str, int]]  # the largest processes at the highest RSS peak
    stored_bytes: int | None
    median_run: Sample


def cells(samples: list[Sample]) -> dict[tuple[str, str], Cell]:
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.size, s.variant), []).append(s)
    out = {}
    for k, runs in groups.items():
        good = [r for r in runs if r.ok] or runs
        med = statistics.median(r.wall_s for r in good)
        middle = min(good, key=lambda r: abs(r.wall_s - med))
        fattest = max(runs, key=lambda r: r.tree_rss_bytes)
        out[k] = Cell(
            k[0],
            k[1],
            all(r.ok for r in runs),
            round(med, 2),
            [r.wall_s for r in runs],
            fattest.tree_rss_bytes,
            max(r.max1_rss_bytes for r in runs),
            max(r.anon_bytes for r in runs),
            fattest.peak_who,
            middle.stored_bytes,
            middle,
        )
    return out


def table(by: dict[tuple[str, str], Cell], sizes: dict[str, dict[str, Any]]) -> str:
    head = (
        f"{'size':9} {'variant':44} {'wall s':>7} {'s/GB':>6} {'RSS MB':>7} {'anon':>5}"
        f" {'ratio':>6}"
        f" {'stored MB':>9}  runs (wall s)"
    )
    lines = [head, "-" * len(head)]
    for size, info in sizes.items():
        gb = info["database_bytes"] / GB
        for v in [*BACKUPS, *RESTORES]:
            c = by.get((size, v))
            if c is None:
                continue
            ref = by.get((size, HAND if v in BACKUPS else BARE))
            ratio = f"{c.wall_s / ref.wall_s:.2f}x" if ref and ref.ok and ref.wall_s else "-"
            stored = "-" if c.stored_bytes is None else f"{c.stored_bytes / MB:,.0f}"
            flag = "" if c.ok else "  FAILED"
            lines.append(
                f"{size:9} {LABELS[v]:44} {c.wall_s:7.1f} {c.wall_s / gb:6.1f}"
                f" {c.tree_rss_bytes / MB:7.0f} {c.anon_bytes / MB:5.0f} {ratio:>6} {stored:>9}"
                f"  {', '.join(f'{w:.1f}' for w in c.walls)}{flag}"
            )
        lines.append("")
    return "\n".join(lines).rstrip()


def _step_lines(v: str, d: dict[str, Any]) -> list[str]:
    """The cell's own account of where its time went, when it has one."""
    t = d.get("timings") or {}
    if v in VARIANTS:
        opts = d.get("dump_options") or {}
        why = f" ({opts['single_archive']})" if opts.get("single_archive") else ""
        stored = " + ".join(
            f"{a['size'] / MB:.0f}" + (f" [{a['tables']} tables]" if "tables" in a else "")
            for a in d.get("archives") or []
        )
        return [
            f"workers {opts.get('workers', '?')}{why}; stored MB {stored}"
            f" (raw {d.get('raw_bytes', 0) / MB:,.0f} MB)",
            f"manifest timings: dump {t.get('dump_seconds', 0):.1f}s, inventory"
            f" {t.get('inventory_seconds', 0):.1f}s (alongside), total"
            f" {t.get('total_seconds', 0):.1f}s",
        ]
    if v == VERIFY and t:
        return [
            f"{d.get('verdict')}: integrity (download + sha256)"
            f" {t.get('integrity_seconds', 0):.1f}s,"
            f" instance {t.get('instance_seconds', 0):.1f}s (decompress + merge"
            f" {t.get('decompress_seconds', 0):.1f}s alongside), restore"
            f" {t.get('restore_seconds', 0):.1f}s, checks {t.get('checks_seconds', 0):.1f}s,"
            f" teardown {t.get('teardown_seconds', 0):.1f}s, total {t.get('total_seconds', 0):.1f}s"
        ]
    if v == BARE and t:
        return [
            f"download | zstd -d {t['download_decompress_seconds']:.1f}s, instance"
            f" {t['instance_seconds']:.1f}s, pg_restore {t['restore_seconds']:.1f}s, teardown"
            f" {t['teardown_seconds']:.1f}s"
        ]
    return []


def breakdown(by: dict[tuple[str, str], Cell]) -> str:
    lines = []
    for (size, v), c in by.items():
        d, cpu = c.median_run.detail, c.median_run.cpu
        lines.append(f"{size} {LABELS[v]}" + ("" if c.ok else "  FAILED"))
        if not c.ok:
            lines.append(f"    {d.get('stderr', '')[-400:]!r}")
            continue
        other = "other (with the restore server)" if v in RESTORES else "other"
        lines += [f"    {x}" for x in _step_lines(v, d)]
        lines.append(
            f"    cpu s: tree {cpu.get('method', 0):.1f}, source postgres"
            f" {cpu.get('server', 0):.1f}, moto {cpu.get('s3', 0):.1f},"
            f" {other} {cpu.get('other', 0):.1f}"
        )
        who = ", ".join(f"{name} {rss / MB:.0f}" for name, rss in c.peak_who)
        lines.append(
            f"    at the RSS peak ({c.tree_rss_bytes / MB:.0f} MB, private"
            f" {c.anon_bytes / MB:.0f} MB): {who} MB"
        )
    return "\n".join(lines)


class Targets:
    """The issue's targets, checked on the medians, each PASS, MISS or N/A (a run missing)."""

    def __init__(self, by: dict[tuple[str, str], Cell], sizes: dict[str, dict[str, Any]]) -> None:
        self.by, self.sizes = by, sizes
        self.out: list[dict[str, str]] = []

    def add(self, name: str, ok: bool | None, detail: str) -> None:
        result = "PASS" if ok else "MISS" if ok is False else "N/A"
        self.out.append({"target": name, "result": result, "detail": detail})

    def get(self, size: str, v: str) -> Cell | None:
        c = self.by.get((size, v))
        return c if c is not None and c.ok else None

    def check(self) -> list[dict[str, str]]:
        for size in self.sizes:
            self.vs_hand(size)
            self.jobs(size)
            self.rss(size)
        self.scaling()
        return self.out

    def vs_hand(self, size: str) -> None:
        hand = self.get(size, HAND)
        for fp, limit in (("nofp", NOFP_VS_HAND), ("fp", FP_VS_HAND)):
            what = "no fingerprints" if fp == "nofp" else "fingerprints"
            name = f"{size}: {what} <= {limit:.2f}x hand (--jobs 2)"
            j1, j2 = self.get(size, f"{fp}-j1"), self.get(size, f"{fp}-j2")
            if not (hand and j2):
                self.add(name, None, "missing run")
                continue
            also = f"; --jobs 1: {j1.wall_s / hand.wall_s:.2f}x" if j1 else ""
            ratio = j2.wall_s / hand.wall_s
            detail = f"{j2.wall_s:.1f}s vs {hand.wall_s:.1f}s = {ratio:.2f}x{also}"
            self.add(name, ratio <= limit, detail)

    def jobs(self, size: str) -> None:
        for fp in ("nofp", "fp"):
            name = f"{size}: --jobs 2 faster than --jobs 1 ({fp})"
            j1, j2 = self.get(size, f"{fp}-j1"), self.get(size, f"{fp}-j2")
            if j1 and j2:
                self.add(name, j2.wall_s < j1.wall_s, f"{j2.wall_s:.2f}s vs {j1.wall_s:.2f}s")
            else:
                self.add(name, None, "missing run")

    def rss(self, size: str) -> None:
        name = f"{size}: peak RSS of every backproof backup < {RSS_LIMIT_MB} MB"
        runs = [self.by[(size, v)] for v in VARIANTS if (size, v) in self.by]
        if runs:
            worst = max(c.tree_rss_bytes for c in runs)
            detail = ", ".join(
                f"{c.variant} {c.tree_rss_bytes / MB:.0f} (private {c.anon_bytes / MB:.0f})"
                for c in runs
            )
            self.add(name, worst < RSS_LIMIT_MB * MB, detail + " MB")
        else:
            self.add(name, None, "missing run")
        verify = self.by.get((size, VERIFY))
        if verify:
            self.add(
                f"{size}: (not in the issue) peak RSS of verify < {RSS_LIMIT_MB} MB",
                verify.tree_rss_bytes < RSS_LIMIT_MB * MB,
                f"{verify.tree_rss_bytes / MB:.0f} MB, private {verify.anon_bytes / MB:.0f} MB"
                " (backproof, pg_restore and its workers, and the restore server only while"
                " pg_ctl starts it)",
            )

    def scaling(self) -> None:
        names = sorted(self.sizes, key=lambda s: self.sizes[s]["database_bytes"])
        if len(names) < 2:
            self.add("s/GB at the largest size within 10% of the smallest", None, "one size only")
            return
        small, big = names[0], names[-1]
        gb = {s: self.sizes[s]["database_bytes"] / GB for s in names}
        hand = ""
        h1, h2 = self.get(small, HAND), self.get(big, HAND)
        if h1 and h2:
            hand = f" (hand: {(h2.wall_s / gb[big]) / (h1.wall_s / gb[small]):.2f}x)"
        for v in VARIANTS:
            name = f"s/GB at {big} within {SCALING - 1:.0%} of {small} ({LABELS[v]})"
            a, b = self.get(small, v), self.get(big, v)
            if a and b:
                ra, rb = a.wall_s / gb[small], b.wall_s / gb[big]
                detail = f"{rb:.1f} vs {ra:.1f} s/GB = {rb / ra:.2f}x{hand}"
                self.add(name, rb <= SCALING * ra, detail)
            else:
                self.add(name, None, "missing run")


def engine_identity() -> dict[str, Any]:
    """Which engine was measured, without git: its version and a hash of its sources."""
    root = REPO / "layers" / "backproof" / "backproof"
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return {"version": backproof_version, "sources_sha256": digest.hexdigest()[:16]}


# -- main ----------------------------------------------------------------------------------------


def size_label(size_gb: float) -> str:
    return f"{size_gb:g} GB"


def one_size(
    size_gb: float,
    info: dict[str, Any],
    *,
    cluster: Any,
    env: dict[str, str],
    s3: Any,
    pg_dump: Path,
    repeat: int,
) -> list[Sample]:
    size, db = size_label(size_gb), info["db"]
    url = cluster.url(db)
    tag = db.replace("_", "-")
    samples: list[Sample] = []
    kept: tuple[str, str] | None = None  # (store, backup id) of the last fingerprinted --jobs 2

    def done(s: Sample) -> None:
        samples.append(s)
        bb.log(
            f"    {s.wall_s:.1f}s, RSS {s.tree_rss_bytes / MB:.0f} MB" + ("" if s.ok else " FAILED")
        )

    for n in range(1, repeat + 1):
        bb.log(f"{size}, round {n}/{repeat}: {LABELS[HAND]}")
        done(run_hand(size, n, db, pg_dump, env=env, s3=s3))
        for v in VARIANTS:
            bb.log(f"{size}, round {n}/{repeat}: {LABELS[v]}")
            prefix = f"{tag}/{v}-{n}"
            s = run_backproof(
                size, n, v, url=url, env=env, s3=s3, store=f"s3://{bb.BUCKET}/{prefix}"
            )
            done(s)
            if v == "fp-j2" and s.ok:
                if kept:
                    delete_prefix(s3, kept[0].removeprefix(f"s3://{bb.BUCKET}/") + "/")
                kept = (f"s3://{bb.BUCKET}/{prefix}", s.detail["backup_id"])
            else:
                delete_prefix(s3, prefix + "/")
    hand_key = f"hand/{size}/dump.custom.zst"
    for n in range(1, repeat + 1):
        if kept:
            bb.log(f"{size}, round {n}/{repeat}: {LABELS[VERIFY]}")
            done(run_verify(size, n, kept[1], kept[0], env))
        bb.log(f"{size}, round {n}/{repeat}: {LABELS[BARE]}")
        done(run_bare(size, n, hand_key, env))
    if kept:
        delete_prefix(s3, kept[0].removeprefix(f"s3://{bb.BUCKET}/") + "/")
    delete_prefix(s3, f"hand/{size}/")
    return samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--sizes",
        default="1,4",
        help="database sizes in GB (pg_database_size, 10^9 bytes), comma-separated (default 1,4)",
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs of every variant; the median is shown"
    )
    ap.add_argument(
        "--keep-cluster",
        type=Path,
        metavar="DIR",
        help="keep the source cluster (and its generated databases) in DIR and reuse it on the"
        " next run; DIR must be reachable by the cluster's user (e.g. under /tmp)",
    )
    ap.add_argument(
        "--idle-wait",
        type=float,
        default=bb.OPTIONS.idle_wait_s,
        help="before each run, wait up to this many seconds for an idle machine",
    )
    args = ap.parse_args()
    sizes_gb = [float(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes_gb or min(sizes_gb) <= 0 or args.repeat < 1:
        ap.error("--sizes needs positive numbers and --repeat at least 1")
    if not shutil.which("zstd"):
        ap.error("the zstd CLI is needed for the hand pipeline: apt-get install -y zstd")
    bb.OPTIONS.idle_wait_s = args.idle_wait
    signal.signal(signal.SIGTERM, bb._exit_on_signal)  # the shared handler
    signal.signal(signal.SIGINT, bb._exit_on_signal)

    started = datetime.now(UTC)
    t_all = time.monotonic()
    samples: list[Sample] = []
    setup: dict[str, dict[str, Any]] = {}
    tools: dict[str, Any] = {}
    engine = engine_identity()
    work = Path(tempfile.mkdtemp(prefix="bench-parallel-"))
    source = (
        KeptCluster(name="bench-parallel", keep=args.keep_cluster)
        if args.keep_cluster
        else LocalCluster(name="bench-parallel")
    )
    try:
        with bb.moto_server(work) as endpoint, source as cluster:
            bb.WATCH.postmaster = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
            s3 = bb.s3_client(endpoint)
            s3.create_bucket(Bucket=bb.BUCKET)
            env = {**os.environ, **cluster.env(), **bb.aws_env(endpoint)}
            major = int(cluster.version.split(".")[0])
            pg_dump = find_program("pg_dump", min_major=major, purpose="the hand pipeline")
            zstd_version = subprocess.run(
                ["zstd", "--version"], capture_output=True, text=True, check=False
            ).stdout.strip()
            tools = {"pg_dump": f"{pg_dump.version} ({pg_dump.path})", "zstd": zstd_version}
            bb.log(f"PostgreSQL {cluster.version} on port {cluster.port}; S3 endpoint {endpoint}")
            bb.log(f"engine {engine}; pg_dump {tools['pg_dump']}; {zstd_version}")
            for size_gb in sizes_gb:
                info = ensure_database(cluster, size_gb)
                bb.log(f"{info['db']}: page cache warmed in {warm_cache(cluster, info['db']):.1f}s")
                setup[size_label(size_gb)] = info
                samples += one_size(
                    size_gb,
                    info,
                    cluster=cluster,
                    env=env,
                    s3=s3,
                    pg_dump=pg_dump.path,
                    repeat=args.repeat,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    by = cells(samples)
    print()
    print(
        f"Median of {args.repeat} run(s) per cell; RSS MB is the highest peak of the summed RSS"
        " of the run's process tree.\nratio: backups to the hand pipeline, verify to the bare"
        " restore; s/GB per GB of pg_database_size."
    )
    print(table(by, setup))
    print("\nData sets:")
    for size, info in setup.items():
        print(
            f"  {size}: {info['db']}, pg_database_size {info['database_bytes'] / GB:.2f} GB"
            f" ({info['table_data_bytes'] / GB:.2f} GB tables, {info['index_bytes'] / GB:.2f}"
            f" GB indexes), {info['tables']} tables, ~{info['rows']:,} rows; built in "
            + ("an earlier run" if info["built_s"] is None else f"{info['built_s']:.0f}s")
        )
    print("\nWhere the time went (the median run of each cell):")
    print(breakdown(by))
    targets = Targets(by, setup).check()
    print("\nTargets:")
    for t in targets:
        print(f"  {t['result']:4}  {t['target']}: {t['detail']}")
    total = time.monotonic() - t_all
    print(f"\nwhole bench: {total:.0f}s")

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"parallel-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(
        json.dumps(
            {
                "started": started.isoformat(),
                "seconds": round(total, 1),
                "argv": sys.argv[1:],
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                },
                "engine": engine,
                "tools": tools,
                "setup": setup,
                "repeat": args.repeat,
                "cells": [
                    {k: v for k, v in asdict(c).items() if k != "median_run"} for c in by.values()
                ],
                "samples": [asdict(s) for s in samples],
                "targets": targets,
            },
            indent=2,
            default=str,
        )
    )
    print(f"results: {path.relative_to(REPO)}")
    return 0 if all(s.ok for s in samples) else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_bare":
        helper = argparse.ArgumentParser()
        helper.add_argument("mode")
        helper.add_argument("bucket")
        helper.add_argument("key")
        helper.add_argument("--jobs", type=int, default=JOBS_VERIFY)
        a = helper.parse_args()
        sys.exit(bare_restore(a.bucket, a.key, a.jobs))
    sys.exit(main())
