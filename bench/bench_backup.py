#!/usr/bin/env python3
"""Benchmark `backproof backup` against the usual ways of taking a logical PostgreSQL backup.

One run, side by side, on two data sets created in an ephemeral local cluster:

  (a) `pgbench -i -s 50`: very compressible (pgbench's filler is blank padding);
  (b) a table of random text (pseudo-words with a Zipf-like distribution, half the rows
      carrying a base64 blob of random bytes), ~400 MB, gzip -6 ratio about 0.5. The same
      generator also fills a ~100 MB copy to show backproof's memory does not grow with size.

Methods, each timed as its own process tree:

  backproof    `backproof backup --json` (zstd, fingerprints on) to moto_server on loopback
  lower-bound  `pg_dump -Fc -Z0 > /dev/null`
  gzip         `pg_dump | gzip > file` (plain format)
  container    `pg_dump -Fc > file` then `aws s3 cp file s3://...` to the same endpoint

Peak RSS is reported twice: `max1` is the largest single process of the method's tree
(ru_maxrss from wait4, via /usr/bin/time), `tree` is the largest sum of RSS over every live
process of the tree, sampled from /proc every 50 ms. Neither counts the PostgreSQL server
backends serving the dump nor the S3 endpoint. See bench/README.md.

Run:  .venv/bin/python bench/bench_backup.py            (results in bench/results/)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import psycopg

from backproof.pg.cluster import LocalCluster

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
VENV_BIN = (
    Path(sys.executable).parent
    if (Path(sys.executable).parent / "backproof").exists()
    else REPO / ".venv" / "bin"
)
PG_BIN = Path(os.environ.get("BENCH_PG_BIN", "/usr/lib/postgresql/15/bin"))
GNU_TIME = Path("/usr/bin/time")
BUCKET = "bench"
STORE = f"s3://{BUCKET}/x"
MB = 1_000_000
SAMPLE_S = 0.05
PAGE = os.sysconf("SC_PAGE_SIZE")

# Text bytes per byte of table (tuple headers, page overhead): sizes the tables of (b).
TEXT_PER_TABLE_BYTE = 0.9

# Targets from issue 2, checked on data set (b).
WALL_VS_LOWER = 1.5
RSS_LIMIT_MB = 200

sys.path.insert(0, str(REPO / "layers" / "backproof"))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- measuring one process tree -----------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, rss bytes) for every process, from /proc/<pid>/stat."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        name = entry.name
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:  # noqa: PTH123 - hot loop
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        # fields[0] is state, [1] ppid, [21] rss (pages)
        table[int(name)] = (int(fields[1]), int(fields[21]) * PAGE)
    return table


class TreeSampler(threading.Thread):
    """Samples the summed RSS of all descendants of `root` (not root itself)."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak = 0
        self.peak_procs = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            table = _proc_table()
            children: dict[int, list[int]] = {}
            for pid, (ppid, _) in table.items():
                children.setdefault(ppid, []).append(pid)
            total, n, todo = 0, 0, list(children.get(self.root, []))
            while todo:
                pid = todo.pop()
                total += table[pid][1]
                n += 1
                todo.extend(children.get(pid, []))
            if total > self.peak:
                self.peak, self.peak_procs = total, n
            self._done.wait(SAMPLE_S)

    def stop(self) -> None:
        self._done.set()
        self.join()


_RUSAGE_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[2:])\n"
    "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "open(sys.argv[1], 'w').write(f'{r.ru_maxrss} {r.ru_utime + r.ru_stime}\\n')\n"
    "sys.exit(rc)\n"
)
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int, with_reaped: bool = False) -> float:
    """CPU seconds of one process (plus its reaped children's, if asked)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return 0.0
    f = stat[stat.rfind(b")") + 2 :].split()
    ticks = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if with_reaped else 0)
    return ticks / TICK


def _system_busy() -> float:
    """CPU seconds spent busy by the whole machine since boot (all cores)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + f[4]
    return (sum(f[:8]) - idle) / TICK


@dataclass
class Watch:
    """Processes outside the measured tree whose CPU the bench accounts for."""

    postmaster: int = 0  # the cluster's server: its own CPU plus every backend's
    moto: int = 0  # the S3 endpoint

    def server_cpu(self) -> float:
        if not self.postmaster:
            return 0.0
        total = _cpu_of(self.postmaster, with_reaped=True)  # reaped backends included
        table = _proc_table()
        for pid, (ppid, _) in table.items():
            if ppid == self.postmaster:
                total += _cpu_of(pid)
        return total

    def snapshot(self) -> dict[str, float]:
        return {
            "server": self.server_cpu(),
            "s3": _cpu_of(self.moto) if self.moto else 0.0,
            "system": _system_busy(),
            "bench": _cpu_of(os.getpid()),
        }


WATCH = Watch()


def wait_idle(max_wait: float, threshold_cores: float = 0.25) -> float:
    """Wait (at most max_wait s) until the machine is idle for a second; returns seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_wait:
        b0 = _system_busy()
        time.sleep(1.0)
        if _system_busy() - b0 < threshold_cores:
            break
    return time.monotonic() - t0


@dataclass
class Run:
    rc: int
    wall: float
    max1_bytes: int  # largest single process (ru_maxrss of the tree, from wait4)
    tree_bytes: int  # largest sampled sum of RSS over the live tree
    stdout: str
    stderr: str
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by who spent them


@dataclass
class Options:
    idle_wait_s: float = 3.0  # --idle-wait


OPTIONS = Options()


def measure(argv: list[str], env: dict[str, str], stdout_path: Path | None = None) -> Run:
    """Run argv under /usr/bin/time (or a getrusage wrapper) and sample its tree's RSS.

    Also accounts CPU seconds during the run: the method's own tree, the cluster's server
    processes, the S3 endpoint, and `other` (the rest of the machine: any contention).
    """
    waited = wait_idle(OPTIONS.idle_wait_s) if OPTIONS.idle_wait_s > 0 else 0.0
    with tempfile.TemporaryDirectory(prefix="bench-m-") as tmp:
        tfile = Path(tmp) / "time"
        if GNU_TIME.exists():
            wrapped = [str(GNU_TIME), "-f", "%M %U %S", "-o", str(tfile), *argv]
        else:
            wrapped = [sys.executable, "-c", _RUSAGE_WRAPPER, str(tfile), *argv]
        out_path = stdout_path or Path(tmp) / "stdout"
        err_path = Path(tmp) / "stderr"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            before = WATCH.snapshot()
            t0 = time.monotonic()
            proc = subprocess.Popen(wrapped, stdout=out, stderr=err, env=env)
            sampler = TreeSampler(proc.pid)
            sampler.start()
            rc = proc.wait()
            wall = time.monotonic() - t0
            sampler.stop()
            after = WATCH.snapshot()
        last = [ln for ln in tfile.read_text().splitlines() if ln.strip()][-1].split()
        max1 = int(last[0]) * 1024
        cpu = {k: round(after[k] - before[k], 2) for k in before}
        cpu["method"] = round(sum(float(x) for x in last[1:]), 2)
        cpu["other"] = round(
            cpu["system"] - cpu["method"] - cpu["server"] - cpu["s3"] - cpu["bench"], 2
        )
        cpu["idle_wait_s"] = round(waited, 1)
        text = "" if stdout_path else out_path.read_text(errors="replace")
        return Run(
            rc, wall, max1, max(sampler.peak, max1), text, err_path.read_text(errors="replace"), cpu
        )


# -- the S3 endpoint ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server(workdir: Path) -> Iterator[str]:
    port = free_port()
    logf = (workdir / "moto.log").open("wb")
    proc = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    WATCH.moto = proc.pid
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/moto-api/", timeout=2):  # noqa: S310
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start; see moto.log") from None
                time.sleep(0.2)
        yield url
    finally:
        WATCH.moto = 0
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logf.close()


def aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def s3_client(endpoint: str) -> Any:

    fake = "bench"  # moto accepts any credentials
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=fake,
        aws_secret_access_key=fake,
    )


def empty_bucket(s3: Any) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    for up in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=BUCKET, Key=up["Key"], UploadId=up["UploadId"])


# -- data sets --------------------------------------------------------------------------------


def make_pgbench(cluster: Any, db: str, scale: int, env: dict[str, str]) -> float:
    cluster.create_database(db)
    t0 = time.monotonic()
    subprocess.run(
        [str(PG_BIN / "pgbench"), "-i", "-q", "-s", str(scale), db],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - t0


_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
# fmt: off
_LETTER_W = [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2,
             2.0, 2.0, 1.9, 1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1]
# fmt: on
_TEXT_DDL = """CREATE TABLE documents (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  body text NOT NULL)"""


def text_chunks(rng: random.Random, chunk_bytes: int = 4 << 20) -> Iterator[bytes]:
    """Endless COPY-text chunks of rows: Zipf-distributed pseudo-words, half with base64."""
    vocab = [
        "".join(rng.choices(_LETTERS, _LETTER_W, k=max(1, int(rng.gauss(6.5, 2.8)))))
        for _ in range(50_000)
    ]
    cum = list(itertools.accumulate(1.0 / (r + 1) for r in range(len(vocab))))
    while True:
        rows, size = [], 0
        while size < chunk_bytes:
            body = " ".join(rng.choices(vocab, cum_weights=cum, k=rng.randint(20, 220)))
            if rng.random() < 0.5:
                body += " " + base64.b64encode(rng.randbytes(rng.randint(24, 600))).decode()
            rows.append(body)
            size += len(body) + 1
        rows.append("")
        yield "\n".join(rows).encode()


def make_text(cluster: Any, targets: dict[str, int]) -> dict[str, float]:
    """Fill each database in `targets` (name -> text bytes) from one generated stream."""

    t0 = time.monotonic()
    conns = {}
    for db in targets:
        cluster.create_database(db)
        conns[db] = psycopg.connect(**cluster.connect_kwargs(db), autocommit=True)
        conns[db].execute(_TEXT_DDL)
    written = dict.fromkeys(targets, 0)
    copies = {db: contextlib.ExitStack() for db in targets}
    writers = {}
    for db, stack in copies.items():
        cur = stack.enter_context(conns[db].cursor())
        writers[db] = stack.enter_context(cur.copy("COPY documents (body) FROM STDIN"))
    try:
        for chunk in text_chunks(random.Random(20261121)):
            open_dbs = [db for db in targets if written[db] < targets[db]]
            if not open_dbs:
                break
            for db in open_dbs:
                writers[db].write(chunk)
                written[db] += len(chunk)
                if written[db] >= targets[db]:
                    copies[db].close()
    finally:
        for stack in copies.values():
            stack.close()
    for conn in conns.values():
        conn.execute("VACUUM (FREEZE, ANALYZE) documents")
        conn.execute("CHECKPOINT")
        conn.close()
    return {
        "seconds": time.monotonic() - t0,
        **{f"text_bytes_{db}": float(n) for db, n in written.items()},
    }


def db_sizes(cluster: Any, db: str) -> dict[str, int]:

    with psycopg.connect(**cluster.connect_kwargs(db)) as conn:
        row = conn.execute(
            "SELECT pg_database_size(current_database()),"
            " (SELECT sum(pg_table_size(c.oid)) FROM pg_class c"
            "  JOIN pg_namespace n ON n.oid = c.relnamespace"
            "  WHERE c.relkind = 'r' AND n.nspname = 'public')"
        ).fetchone()
        assert row is not None
        return {"database_bytes": int(row[0]), "table_data_bytes": int(row[1] or 0)}


# -- the methods ------------------------------------------------------------------------------


@dataclass
class Result:
    dataset: str
    method: str
    wall_s: float
    max1_rss_bytes: int
    tree_rss_bytes: int
    stored_bytes: int | None
    ok: bool = True
    cpu: dict[str, float] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    run: int = 1
    walls: list[float] = field(default_factory=list)  # every run's wall time, in best_of()


def run_backproof(
    dataset: str, method: str, url: str, env: dict[str, str], s3: Any, *, extra: list[str]
) -> Result:
    argv = [
        str(VENV_BIN / "backproof"),
        "backup",
        "--source-url",
        url,
        "--store",
        STORE,
        "--database-name",
        "bench",
        "--json",
        *extra,
    ]
    r = measure(argv, env)
    detail: dict[str, Any] = {"argv": argv[1:], "rc": r.rc}
    stored = None
    if r.rc == 0:
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        head = s3.head_object(Bucket=BUCKET, Key=summary["archive_key"])
        stored = int(head["ContentLength"])
        manifest = json.loads(
            s3.get_object(Bucket=BUCKET, Key=summary["manifest_key"])["Body"].read()
        )
        detail.update(
            summary=summary,
            timings=manifest.get("timings"),
            raw_size=manifest["archive"].get("raw_size"),
            encryption=manifest["archive"].get("encryption"),
            size_matches_json=stored == summary["size"],
        )
    else:
        detail["stderr"] = r.stderr[-2000:]
    empty_bucket(s3)
    return Result(
        dataset, method, r.wall, r.max1_bytes, r.tree_bytes, stored, r.rc == 0, r.cpu, detail
    )


def run_lower_bound(dataset: str, db: str, env: dict[str, str]) -> Result:
    argv = [str(PG_BIN / "pg_dump"), "-Fc", "-Z0", "--no-password", "-d", db]
    r = measure(argv, env, stdout_path=Path(os.devnull))
    return Result(
        dataset,
        "lower-bound",
        r.wall,
        r.max1_bytes,
        r.tree_bytes,
        None,
        r.rc == 0,
        r.cpu,
        {"argv": ["pg_dump", *argv[1:]], "rc": r.rc, "stderr": r.stderr[-2000:]},
    )


def run_zstd_floor(dataset: str, db: str, env: dict[str, str]) -> Result:
    """Reference: dump plus zstd -1 (C, one thread) and nothing else: the least a compressed
    backup costs on this machine."""
    script = 'set -o pipefail; "$PG_DUMP" -Fc -Z0 --no-password -d "$DB" | zstd -q -1 -c | wc -c'
    r = measure(["bash", "-c", script], {**env, "PG_DUMP": str(PG_BIN / "pg_dump"), "DB": db})
    ok = r.rc == 0 and r.stdout.strip().isdigit()
    return Result(
        dataset,
        "zstd-floor",
        r.wall,
        r.max1_bytes,
        r.tree_bytes,
        int(r.stdout.strip()) if ok else None,
        ok,
        r.cpu,
        {"shell": "pg_dump -Fc -Z0 | zstd -1 | wc -c", "rc": r.rc, "stderr": r.stderr[-2000:]},
    )


def run_gzip(dataset: str, db: str, env: dict[str, str], workdir: Path) -> Result:
    out = workdir / f"{dataset}.sql.gz"
    script = 'set -o pipefail; "$PG_DUMP" --no-password -d "$DB" | gzip > "$OUT"'
    r = measure(
        ["bash", "-c", script],
        {**env, "PG_DUMP": str(PG_BIN / "pg_dump"), "DB": db, "OUT": str(out)},
    )
    stored = out.stat().st_size if out.exists() else None
    out.unlink(missing_ok=True)
    return Result(
        dataset,
        "gzip",
        r.wall,
        r.max1_bytes,
        r.tree_bytes,
        stored,
        r.rc == 0,
        r.cpu,
        {"shell": "pg_dump | gzip > file", "rc": r.rc, "stderr": r.stderr[-2000:]},
    )


def run_container(dataset: str, db: str, env: dict[str, str], workdir: Path, s3: Any) -> Result:
    out = workdir / f"{dataset}.dump"
    dump = measure(
        [str(PG_BIN / "pg_dump"), "-Fc", "--no-password", "-d", db], env, stdout_path=out
    )
    key = f"container/{dataset}.dump"
    aws = VENV_BIN / "aws"
    if aws.exists():
        upload_argv = [str(aws), "s3", "cp", "--only-show-errors", str(out), f"s3://{BUCKET}/{key}"]
        uploader = "aws s3 cp (awscli v1)"
    else:  # no awscli: the same transfer manager awscli uses, through boto3
        code = (
            "import boto3, sys; boto3.client('s3').upload_file(sys.argv[1], sys.argv[2], "
            "sys.argv[3])"
        )
        upload_argv = [sys.executable, "-c", code, str(out), BUCKET, key]
        uploader = "boto3 upload_file (awscli not installed)"
    up = measure(upload_argv, env) if dump.rc == 0 else None
    stored = None
    if up and up.rc == 0:
        stored = int(s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"])
    local = out.stat().st_size if out.exists() else None
    out.unlink(missing_ok=True)
    empty_bucket(s3)
    ok = dump.rc == 0 and up is not None and up.rc == 0
    return Result(
        dataset,
        "container",
        dump.wall + (up.wall if up else 0.0),
        max(dump.max1_bytes, up.max1_bytes if up else 0),
        max(dump.tree_bytes, up.tree_bytes if up else 0),
        stored,
        ok,
        {k: round(v + (up.cpu.get(k, 0.0) if up else 0.0), 2) for k, v in dump.cpu.items()},
        {
            "uploader": uploader,
            "dump_s": dump.wall,
            "upload_s": up.wall if up else None,
            "local_file_bytes": local,
            "dump_rc": dump.rc,
            "upload_rc": up.rc if up else None,
            "stderr": (dump.stderr + (up.stderr if up else ""))[-2000:],
        },
    )


# -- report -------------------------------------------------------------------------------------

METHOD_LABELS = {
    "backproof": "backproof backup (zstd, fingerprints)",
    "lower-bound": "pg_dump -Fc -Z0 > /dev/null",
    "zstd-floor": "(ref.) pg_dump -Fc -Z0 | zstd -1 > /dev/null",
    "gzip": "pg_dump | gzip > file",
    "container": "pg_dump -Fc > file; aws s3 cp",
    "backproof-nofp": "backproof --no-fingerprints",
    "backproof-nofp-none": "backproof --no-fingerprints --compression none",
    "backproof-none": "backproof --compression none",
}


def _fmt_mb(n: int | None) -> str:
    return "-" if n is None else f"{n / MB:,.1f}"


def table(results: list[Result], datasets: list[str]) -> str:
    by = {(r.dataset, r.method): r for r in results}
    methods = [m for m in METHOD_LABELS if any((d, m) in by for d in datasets)]
    head1 = f"{'':47}" + "".join(f"| {d:^34}" for d in datasets)
    head2 = f"{'method':47}" + "".join(
        f"| {'wall s':>7} {'RSS MB tree/max1':>16} {'stored MB':>9}" for _ in datasets
    )
    lines = [head1, head2, "-" * len(head2)]
    for m in methods:
        line = f"{METHOD_LABELS[m]:47}"
        for d in datasets:
            r = by.get((d, m))
            if r is None:
                line += f"| {'':34}"
                continue
            flag = "" if r.ok else " FAILED"
            rss = f"{r.tree_rss_bytes / MB:.0f}/{r.max1_rss_bytes / MB:.0f}"
            line += f"| {r.wall_s:7.1f} {rss:>16} {_fmt_mb(r.stored_bytes):>9}{flag}"
        lines.append(line)
    return "\n".join(lines)


def cpu_table(results: list[Result]) -> str:
    cores = os.cpu_count() or 1
    lines = [
        f"{'data set':16} {'method':47} {'run':>3} {'wall':>6} {'method':>7} {'server':>7} "
        f"{'s3':>6} {'other':>6}   (CPU s; {cores} cores = {cores} CPU-s per wall s)"
    ]
    order = {m: i for i, m in enumerate(METHOD_LABELS)}
    for r in sorted(results, key=lambda r: (r.dataset, order[r.method], r.run)):
        c = r.cpu
        lines.append(
            f"{r.dataset:16} {METHOD_LABELS[r.method]:47} {r.run:3} {r.wall_s:6.1f} "
            f"{c.get('method', 0):7.1f} {c.get('server', 0):7.1f} {c.get('s3', 0):6.1f} "
            f"{c.get('other', 0):6.1f}"
        )
    return "\n".join(lines)


def check_targets(results: list[Result], big: str, small: str) -> list[dict[str, Any]]:
    by = {(r.dataset, r.method): r for r in results}
    bp, lb = by.get((big, "backproof")), by.get((big, "lower-bound"))
    gz, ct = by.get((big, "gzip")), by.get((big, "container"))
    bp_small = by.get((small, "backproof"))
    out: list[dict[str, Any]] = []

    def add(name: str, ok: bool | None, text: str) -> None:
        out.append(
            {
                "target": name,
                "result": "PASS" if ok else "MISS" if ok is False else "N/A",
                "detail": text,
            }
        )

    if bp and lb and bp.ok and lb.ok:
        ratio = bp.wall_s / lb.wall_s
        add(
            "wall <= 1.5x lower bound",
            ratio <= WALL_VS_LOWER,
            f"{bp.wall_s:.1f}s vs {lb.wall_s:.1f}s = {ratio:.2f}x",
        )
    else:
        add("wall <= 1.5x lower bound", None, "missing run")
    if bp and gz and ct and bp.ok:
        add(
            "wall below gzip and container",
            bp.wall_s < gz.wall_s and bp.wall_s < ct.wall_s,
            f"{bp.wall_s:.1f}s vs gzip {gz.wall_s:.1f}s, container {ct.wall_s:.1f}s",
        )
    else:
        add("wall below gzip and container", None, "missing run")
    if bp and gz and bp.stored_bytes and gz.stored_bytes:
        add(
            "stored <= gzip's",
            bp.stored_bytes <= gz.stored_bytes,
            f"{_fmt_mb(bp.stored_bytes)} MB vs {_fmt_mb(gz.stored_bytes)} MB",
        )
    else:
        add("stored <= gzip's", None, "missing run")
    for d, r in ((small, bp_small), (big, bp)):
        if r and r.ok:
            add(
                f"peak RSS < {RSS_LIMIT_MB} MB ({d})",
                r.tree_rss_bytes < RSS_LIMIT_MB * MB,
                f"tree {r.tree_rss_bytes / MB:.0f} MB, "
                f"largest process {r.max1_rss_bytes / MB:.0f} MB",
            )
        else:
            add(f"peak RSS < {RSS_LIMIT_MB} MB ({d})", None, "missing run")
    return out


# -- main ---------------------------------------------------------------------------------------


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def one_round(
    n: int,
    plan: list[tuple[str, str]],
    *,
    small: str,
    big: str,
    cluster: Any,
    env: dict[str, str],
    s3: Any,
    workdir: Path,
    diagnose: bool,
) -> list[Result]:
    """Every method once, in a fixed order; rounds are repeated so contention spreads out."""
    out: list[Result] = []

    def step(dataset: str, label: str, fn: Any, *a: Any, **kw: Any) -> None:
        log(f"round {n}, {dataset}: {label}")
        r = fn(*a, **kw)
        r.run = n
        log(f"    {r.wall_s:.1f}s" + ("" if r.ok else " FAILED"))
        out.append(r)

    for dataset, db in plan:
        url = cluster.url(db)
        step(dataset, "lower bound", run_lower_bound, dataset, db, env)
        step(dataset, "backproof", run_backproof, dataset, "backproof", url, env, s3, extra=[])
        if shutil.which("zstd"):
            step(dataset, "pg_dump | zstd -1 (reference)", run_zstd_floor, dataset, db, env)
        step(dataset, "pg_dump | gzip", run_gzip, dataset, db, env, workdir)
        step(dataset, "pg_dump -Fc > file; upload", run_container, dataset, db, env, workdir, s3)
    step(small, "lower bound", run_lower_bound, small, "text_small", env)
    step(
        small,
        "backproof",
        run_backproof,
        small,
        "backproof",
        cluster.url("text_small"),
        env,
        s3,
        extra=[],
    )
    if diagnose:
        for method, extra in (
            ("backproof-nofp", ["--no-fingerprints"]),
            ("backproof-none", ["--compression", "none"]),
            ("backproof-nofp-none", ["--no-fingerprints", "--compression", "none"]),
        ):
            step(
                big,
                METHOD_LABELS[method],
                run_backproof,
                big,
                method,
                cluster.url("text_big"),
                env,
                s3,
                extra=extra,
            )
    return out


def best_of(results: list[Result]) -> list[Result]:
    """Per data set and method: the fastest successful run, with the highest RSS of all runs
    (contention only ever adds time, so the minimum is the estimate of the cost itself)."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.dataset, r.method), []).append(r)
    best = []
    for runs in groups.values():
        ok = [r for r in runs if r.ok] or runs
        b = min(ok, key=lambda r: r.wall_s)
        best.append(
            replace(
                b,
                max1_rss_bytes=max(r.max1_rss_bytes for r in runs),
                tree_rss_bytes=max(r.tree_rss_bytes for r in runs),
                ok=all(r.ok for r in runs),
                walls=[round(r.wall_s, 2) for r in runs],
            )
        )
    return best


def engine_version() -> dict[str, Any]:
    """The commit the engine was run from, and whether its files differed from it."""

    def git(*a: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(REPO), *a], capture_output=True, text=True, check=False
        )
        return out.stdout.rstrip()

    dirty = git("status", "--porcelain", "--", "layers/backproof/backproof")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "engine_files_modified": [ln[3:] for ln in dirty.splitlines()],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=int, default=50, help="pgbench scale for (a); 0 skips (a)")
    ap.add_argument("--table-mb", type=int, default=400, help="table size of (b), in MB")
    ap.add_argument(
        "--small-table-mb",
        type=int,
        default=100,
        help="table size of the second, smaller copy of (b), in MB",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of every method; tables show the fastest run (default 3)",
    )
    ap.add_argument(
        "--idle-wait",
        type=float,
        default=OPTIONS.idle_wait_s,
        help="before each run, wait up to this many seconds for an idle machine",
    )
    ap.add_argument(
        "--no-diagnose",
        action="store_true",
        help="skip backproof --no-fingerprints / --compression none runs on (b)",
    )
    args = ap.parse_args()
    OPTIONS.idle_wait_s = args.idle_wait
    # SIGTERM (and SIGINT, which a background job started from a script ignores) end the run
    # through the normal exits, so the cluster and the S3 endpoint are always stopped.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)

    started = datetime.now(UTC)
    engine: dict[str, Any] = {}
    t_all = time.monotonic()
    results: list[Result] = []
    setup: dict[str, Any] = {}
    big, small = f"text-{args.table_mb}MB", f"text-{args.small_table_mb}MB"
    pgb = f"pgbench-s{args.scale}"
    workdir = Path(tempfile.mkdtemp(prefix="backproof-bench-"))
    try:
        with moto_server(workdir) as endpoint, LocalCluster(name="bench") as cluster:
            WATCH.postmaster = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
            s3 = s3_client(endpoint)
            s3.create_bucket(Bucket=BUCKET)
            env = {**os.environ, **cluster.env(), **aws_env(endpoint)}
            log(f"PostgreSQL {cluster.version} on port {cluster.port}; S3 endpoint {endpoint}")
            engine = engine_version()
            log(
                f"engine at {engine['commit']}, modified files: "
                f"{engine['engine_files_modified'] or 'none'}"
            )

            plan: list[tuple[str, str]] = []
            if args.scale > 0:
                log(f"(a) pgbench -i -s {args.scale} ...")
                setup[pgb] = {
                    "load_s": make_pgbench(cluster, "pgbench", args.scale, env),
                    **db_sizes(cluster, "pgbench"),
                }
                log(f"    loaded in {setup[pgb]['load_s']:.0f}s: {setup[pgb]}")
                plan.append((pgb, "pgbench"))
            log(f"(b) random text: {args.table_mb} MB and {args.small_table_mb} MB tables ...")
            gen = make_text(
                cluster,
                {
                    "text_big": int(args.table_mb * MB * TEXT_PER_TABLE_BYTE),
                    "text_small": int(args.small_table_mb * MB * TEXT_PER_TABLE_BYTE),
                },
            )
            setup[big] = {"load_s": gen["seconds"], **db_sizes(cluster, "text_big")}
            setup[small] = db_sizes(cluster, "text_small")
            log(f"    loaded in {gen['seconds']:.0f}s: {setup[big]} / {setup[small]}")
            plan.append((big, "text_big"))

            for n in range(1, args.repeat + 1):
                results.extend(
                    one_round(
                        n,
                        plan,
                        small=small,
                        big=big,
                        cluster=cluster,
                        env=env,
                        s3=s3,
                        workdir=workdir,
                        diagnose=not args.no_diagnose,
                    )
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    datasets = [d for d in (pgb, big, small) if any(r.dataset == d for r in results)]
    best = best_of(results)
    print()
    print(f"Fastest of {args.repeat} run(s) per cell; RSS is the highest of all runs.")
    print(table(best, datasets))
    print(
        "\nRSS MB: tree = peak of the summed RSS of every process of the method (sampled "
        f"every {SAMPLE_S * 1000:.0f} ms);\n        max1 = peak RSS of its largest single "
        "process (wait4 ru_maxrss). Server backends and the S3 endpoint are not counted."
    )
    for d in datasets:
        print(f"  {d}: {json.dumps(setup.get(d, {}))}")
    print(
        "\nWhere the CPU went during each run (method = the measured process tree; server ="
        " the\ncluster's postgres processes; s3 = moto_server; other = the rest of the machine,"
        " i.e.\ncontention from unrelated work):"
    )
    print(cpu_table(results))
    print("\nWall seconds of every run:")
    for r in best:
        print(f"  {r.dataset:16} {METHOD_LABELS[r.method]:47} {r.walls}")
    targets = check_targets(best, big, small)
    print(f"\nTargets on {big} (fingerprints on):")
    for t in targets:
        print(f"  {t['result']:4}  {t['target']:36} {t['detail']}")
    for r in best:
        if r.method.startswith("backproof") and r.ok:
            print(
                f"  {r.dataset} {r.method}: engine timings {r.detail.get('timings')}, "
                f"raw dump {_fmt_mb(r.detail.get('raw_size'))} MB"
            )
    total = time.monotonic() - t_all
    print(f"\nwhole bench: {total:.0f}s")

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(
        json.dumps(
            {
                "started": started.isoformat(),
                "seconds": total,
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                },
                "pg_bin": str(PG_BIN),
                "engine": engine,
                "setup": setup,
                "repeat": args.repeat,
                "best": [asdict(r) for r in best],
                "results": [asdict(r) for r in results],
                "targets": targets,
            },
            indent=2,
            default=str,
        )
    )
    print(f"results: {path.relative_to(REPO)}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
