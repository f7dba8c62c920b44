"""Dump workers: one or more pg_dump processes reading the same exported snapshot, each
streamed (compressed, hashed, uploaded in parts) as it is produced.

With one worker the backup is one custom archive, as pg_dump writes it. With more, the
largest tables' data is shared out: worker 0 dumps the main archive (the whole schema, large
objects, sequences and the data of every table not given to another worker, with
`--exclude-table-data` for the others) and each other worker a data-only archive of its
tables (`--data-only --table=…`). A verification or a restore merges them (pg/merge.py).
Tables are given out largest first, each to the worker with the least so far (the main
archive starts with everything it keeps), so the workers finish close together; small
databases keep one archive, which is faster there.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ..compression import compressor
from ..model.manifest import ArchiveInfo, ArchivePart
from ..pg.dump import READ_CHUNK, PgDump
from ..pg.inventory import list_tables
from ..pg.merge import MERGEABLE_PG_DUMP
from ..signals import signals_deferred
from ..store import MultipartUpload
from ..store.multipart import ObjectInfo

ProgressFn = Callable[[str, dict[str, Any]], None]

# Below this much table data one archive is faster than several (each pg_dump reads the whole
# catalog before it dumps a row, and the merge costs a pass over the parts).
SPLIT_MIN_BYTES = 256 << 20
# Tables smaller than this stay in the main archive: a worker per table is not worth it.
SPLIT_MIN_TABLE_BYTES = 8 << 20
# At most this many tables are named on pg_dump's command lines (each name is an argument).
MAX_SPLIT_TABLES = 2000
# pg_dump options that choose what is dumped: with any of these the backup is one archive,
# so a split never changes what the caller's selection means.
SELECTION_OPTIONS = (
    "-t",
    "--table",
    "-T",
    "--exclude-table",
    "-n",
    "--schema",
    "-N",
    "--exclude-schema",
    "--exclude-table-data",
    "--filter",
    "-a",
    "--data-only",
    "-s",
    "--schema-only",
    "--section",
    "-e",
    "--extension",
    "--exclude-extension",
    "--no-data",
    "--no-schema",
    "--statistics-only",
    "--load-via-partition-root",
)


def selects_objects(extra: list[str]) -> bool:
    """Whether pg_dump arguments choose which objects or sections are dumped."""
    return any(
        a == o or a.startswith(o + "=") or (len(o) == 2 and a.startswith(o))
        for a in extra
        for o in SELECTION_OPTIONS
    )


@dataclass
class Share:
    """What one worker dumps: the main archive (`tables` are the data it leaves to others),
    or a part (`tables` are the data it holds)."""

    index: int
    tables: list[tuple[str, str]] = field(default_factory=list)
    weight: int = 0

    @property
    def main(self) -> bool:
        return self.index == 0


def plan_shares(
    conn: psycopg.Connection[Any],
    jobs: int,
    extra: list[str],
    pg_dump_major: int,
    *,
    min_bytes: int = SPLIT_MIN_BYTES,
    min_table_bytes: int = SPLIT_MIN_TABLE_BYTES,
) -> tuple[list[Share], str]:
    """How `jobs` workers share the dump, read in the snapshot (in a savepoint, so a failure
    does not end it); and why there is one archive when there is (empty when split)."""
    if jobs <= 1:
        return [Share(0)], "one worker"
    if selects_objects(extra):
        return [Share(0)], "the pg_dump arguments select what is dumped"
    if pg_dump_major not in MERGEABLE_PG_DUMP:
        return [Share(0)], f"archives of pg_dump {pg_dump_major} are not merged by this release"
    # Sizes from the catalog (pages as of the last VACUUM or ANALYZE, TOAST included), the
    # inventory's own listing: reading the files' sizes would lock every table, and wait
    # behind a migration's lock. A table never vacuumed or analyzed shows no pages yet: it
    # counts as one, so it is still given to someone (any split is a correct backup).
    with conn.transaction():
        row = conn.execute("SELECT current_setting('block_size')").fetchone()
        tables = list_tables(conn)
    block = int(row[0]) if row else 8192
    sizes = sorted(
        (
            (schema, name, max(pages, 1) * block)
            for schema, name, kind, _, pages, _ in tables
            if kind == "table"
        ),
        key=lambda t: (-t[2], t[0], t[1]),
    )
    total = sum(b for _, _, b in sizes)
    if total < min_bytes:
        return [Share(0)], f"{total >> 20} MiB of table data is dumped faster as one archive"
    big = [t for t in sizes if t[2] >= min_table_bytes][:MAX_SPLIT_TABLES]
    shares = [Share(i) for i in range(jobs)]
    shares[0].weight = total - sum(b for _, _, b in big)
    kept: list[tuple[str, str]] = []
    for schema, name, size in big:  # largest first, each to the lightest worker
        lightest = min(shares, key=lambda s: (s.weight, s.index))
        lightest.weight += size
        if lightest.main:
            kept.append((schema, name))
        else:
            lightest.tables.append((schema, name))
    parts = [s for s in shares[1:] if s.tables]
    if not parts:
        return [Share(0)], "no table is large enough to be dumped on its own"
    main = Share(0, [t for p in parts for t in p.tables], shares[0].weight)
    return [main, *[Share(i + 1, p.tables, p.weight) for i, p in enumerate(parts)]], ""


def pattern(schema: str, name: str) -> str:
    """A pg_dump pattern matching exactly this table: inside double quotes every character is
    literal, and a double quote is written twice."""
    return '"{}"."{}"'.format(schema.replace('"', '""'), name.replace('"', '""'))


def share_args(share: Share) -> list[str]:
    if share.main:
        return [f"--exclude-table-data={pattern(s, n)}" for s, n in share.tables]
    return ["--data-only", *[f"--table={pattern(s, n)}" for s, n in share.tables]]


@dataclass
class Stream:
    """One pg_dump, its upload, and what went through."""

    share: Share
    dump: PgDump
    upload: MultipartUpload
    key: str
    compression: str
    raw: int = 0
    sha256: str = ""
    info: ObjectInfo | None = None
    error: BaseException | None = None
    thread: threading.Thread | None = None


class Streams:
    """Every worker's pg_dump, streamed to the store in threads (compression, hashing and the
    upload release the GIL); the bytes are reported together."""

    def __init__(self, progress: ProgressFn, compression: str) -> None:
        self.items: list[Stream] = []
        self.progress, self.compression = progress, compression
        self._lock = threading.Lock()
        self._raw = 0
        self._next_report = 0

    def add(self, share: Share, dump: PgDump, upload: MultipartUpload, key: str) -> None:
        self.items.append(Stream(share, dump, upload, key, self.compression))

    def start(self) -> None:
        for stream in self.items:
            stream.dump.start()
            stream.thread = threading.Thread(
                target=self._run, args=(stream,), name=f"dump-{stream.share.index}", daemon=True
            )
            stream.thread.start()

    def wait(self) -> list[Stream]:
        """Wait for every worker; the first failure is raised (after the others are killed)."""
        for stream in self.items:
            assert stream.thread is not None
            while stream.thread.is_alive():
                stream.thread.join(timeout=0.5)
                if any(s.error is not None for s in self.items):
                    break
            failed = next((s for s in self.items if s.error is not None), None)
            if failed is not None:
                self.kill()
                assert failed.error is not None
                raise failed.error
        self.progress("bytes", {"raw": self._raw, "stored": self.stored})
        return self.items

    @property
    def stored(self) -> int:
        return sum(s.upload.size for s in self.items)

    def kill(self) -> None:
        with signals_deferred():
            for stream in self.items:
                stream.dump.kill()
            for stream in self.items:
                if stream.thread is not None:
                    stream.thread.join(timeout=30)
                stream.upload.abort()

    def _run(self, stream: Stream) -> None:
        try:
            stream.raw, stream.sha256 = self._pump(stream)
            code = stream.dump.wait()
            if code != 0:
                stream.error = DumpExit(stream, code)
                return
            stream.info = stream.upload.complete()
        except BaseException as exc:  # raised by wait() in the main thread
            stream.error = exc

    def _pump(self, stream: Stream) -> tuple[int, str]:
        stdout = stream.dump.stdout
        comp = compressor(stream.compression)
        digest = hashlib.sha256()
        raw = 0
        read = stdout.read1 if hasattr(stdout, "read1") else stdout.read
        while chunk := read(READ_CHUNK):
            raw += len(chunk)
            out = comp.compress(chunk)
            if out:
                digest.update(out)
                stream.upload.write(out)
            self._count(len(chunk))
        tail = comp.flush()
        if tail:
            digest.update(tail)
            stream.upload.write(tail)
        return raw, digest.hexdigest()

    def _count(self, n: int) -> None:
        with self._lock:
            self._raw += n
            if self._raw >= self._next_report:
                self._next_report = self._raw + (16 << 20)
                self.progress("bytes", {"raw": self._raw, "stored": self.stored})


def archive_info(written: list[Stream], compression: str) -> ArchiveInfo:
    """The manifest's account of what the workers stored: the main archive and its parts."""
    main, *parts = written
    assert main.info is not None and all(p.info is not None for p in parts)
    return ArchiveInfo(
        key=main.key,
        format="custom",
        compression=compression,
        size=main.info.size,
        sha256=main.sha256,
        raw_size=main.raw,
        encryption=main.info.encryption,
        parts=[
            ArchivePart(
                key=p.key,
                size=p.info.size if p.info else 0,
                sha256=p.sha256,
                raw_size=p.raw,
                tables=[[schema, name] for schema, name in p.share.tables],
            )
            for p in parts
        ],
    )


class DumpExit(Exception):
    """pg_dump exited non-zero; backup.py turns it into DumpFailed or LockWaitTimeout."""

    def __init__(self, stream: Stream, code: int) -> None:
        super().__init__(f"pg_dump exited {code}")
        self.stream, self.code = stream, code
