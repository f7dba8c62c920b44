"""Custom-format archives as pg_dump writes them: the header and TOC, and finding data blocks
in a mapped file. Layout: src/bin/pg_dump/pg_backup_archiver.c (WriteHead, WriteToc, ReadToc)
and pg_backup_custom.c (_StartData, _EndData, _WriteExtraToc) in PostgreSQL."""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

K_OFFSET_POS_NOT_SET, K_OFFSET_POS_SET, K_OFFSET_NO_DATA = 1, 2, 3
BLK_DATA, BLK_BLOBS = 1, 3
_ARCHIVE_CUSTOM = 1
SECTION_PRE_DATA, SECTION_DATA = 2, 3
# Archive versions read here: PostgreSQL 11's pg_dump (1.13) to 18's (1.16).
SUPPORTED_VERSIONS = ((1, 12), (1, 16))
# A TOC larger than this is not a pg_dump TOC (even 100,000 tables take a few tens of MiB).
MAX_HEAD = 1 << 30


class ArchiveFormatError(ValueError):
    """The bytes are not a custom archive this module can merge."""


class Short(Exception):
    """More bytes are needed to read the head."""


class _Reader:
    def __init__(self, data: bytes | mmap.mmap, pos: int = 0) -> None:
        self.data, self.pos, self.int_size = data, pos, 4

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise Short
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def int_(self) -> int:
        sign = self.byte()
        raw = self.take(self.int_size)
        if sign not in (0, 1):
            raise ArchiveFormatError("malformed integer in archive")
        value = int.from_bytes(raw, "little")
        return -value if sign else value

    def str_(self) -> str | None:
        length = self.int_()
        if length == -1:
            return None
        if length < -1 or length > MAX_HEAD:
            raise ArchiveFormatError("malformed string length in archive")
        return self.take(length).decode("utf-8", errors="replace")


@dataclass
class Entry:
    """One TOC entry, with the byte spans the merge copies."""

    dump_id: int
    desc: str
    tag: str
    namespace: str
    section: int
    deps: list[int]
    flag: int  # _K_OFFSET_*
    start: int  # the entry's first byte (its dump id)
    body: int  # the first byte after the dump id
    deps_at: int  # the first byte of the dependency list
    end: int  # the first byte after the entry


@dataclass
class Head:
    """An archive's header and TOC."""

    raw: bytes  # the bytes up to the first data block
    version: tuple[int, int]
    int_size: int
    off_size: int
    count_at: int  # where the TOC's entry count is
    entries: list[Entry] = field(default_factory=list)

    @property
    def data_start(self) -> int:
        return len(self.raw)

    def int_bytes(self, value: int) -> bytes:
        return bytes([1 if value < 0 else 0]) + abs(value).to_bytes(self.int_size, "little")

    def str_bytes(self, value: str | None) -> bytes:
        if value is None:
            return self.int_bytes(-1)
        raw = value.encode()
        return self.int_bytes(len(raw)) + raw


def parse_head(data: bytes | mmap.mmap) -> Head:
    """The header and TOC at the start of `data`; Short when `data` ends inside them."""
    if len(data) < 5:
        raise Short
    if data[:5] != b"PGDMP":
        raise ArchiveFormatError("not a custom-format archive")
    r = _Reader(data, 5)
    version = (r.byte(), r.byte())
    r.byte()  # revision
    if not SUPPORTED_VERSIONS[0] <= version <= SUPPORTED_VERSIONS[1]:
        raise ArchiveFormatError(f"archive version {version[0]}.{version[1]} is not handled")
    r.int_size = r.byte()
    off_size = r.byte()
    if r.byte() != _ARCHIVE_CUSTOM or not 1 <= r.int_size <= 8 or not 4 <= off_size <= 8:
        raise ArchiveFormatError("not a custom-format archive")
    if version >= (1, 15):
        r.byte()  # compression algorithm
    else:
        r.int_()  # compression level
    for _ in range(7):  # creation time
        r.int_()
    for _ in range(3):  # database name, server version, pg_dump version
        r.str_()
    count_at = r.pos
    count = r.int_()
    if count < 0:
        raise ArchiveFormatError("malformed TOC")
    entries = [_entry(r, version, off_size) for _ in range(count)]
    return Head(data[: r.pos], version, r.int_size, off_size, count_at, entries)


def _entry(r: _Reader, version: tuple[int, int], off_size: int) -> Entry:
    start = r.pos
    dump_id = r.int_()
    body = r.pos
    had_dumper = r.int_()
    if dump_id <= 0 or had_dumper not in (0, 1):
        raise ArchiveFormatError("malformed TOC entry")
    r.str_()  # tableoid
    r.str_()  # oid
    tag = r.str_() or ""
    desc = r.str_() or ""
    section = r.int_()
    r.str_()  # defn
    r.str_()  # dropStmt
    r.str_()  # copyStmt
    namespace = r.str_() or ""
    r.str_()  # tablespace
    if version >= (1, 14):
        r.str_()  # tableam
    if version >= (1, 16):
        r.int_()  # relkind
    r.str_()  # owner
    r.str_()  # "false" (with oids)
    deps_at = r.pos
    deps: list[int] = []
    while (dep := r.str_()) is not None:
        deps.append(int(dep))
    flag = r.byte()
    if flag not in (K_OFFSET_POS_NOT_SET, K_OFFSET_POS_SET, K_OFFSET_NO_DATA):
        raise ArchiveFormatError("malformed data offset in TOC")
    r.take(off_size)
    return Entry(dump_id, desc, tag, namespace, section, deps, flag, start, body, deps_at, r.pos)


def read_head(chunks: Iterator[bytes]) -> tuple[Head, bytes]:
    """The head of an archive arriving in chunks, and the bytes after it that came along."""
    buf = b""
    while True:
        try:
            head = parse_head(buf)
            return head, buf[head.data_start :]
        except Short:
            pass
        chunk = next(chunks, None)
        if chunk is None:
            raise ArchiveFormatError("the archive ends inside its TOC")
        if len(buf) > MAX_HEAD:
            raise ArchiveFormatError("the archive's TOC is implausibly large")
        buf += chunk


def search(
    data: Any,
    needles: tuple[bytes, ...],
    start: int,
    skip: int,
    *,
    end: int | None = None,
    window: int = 16 << 20,
) -> int:
    """Earliest position of any needle at or after `start` (and ending before `end`), plus
    `skip`; -1 if none. Searches the mapped file window by window (C speed, no copies) and
    drops each window's pages after it, so resident memory stays flat whatever the size."""
    longest = max(len(n) for n in needles)
    size = len(data) if end is None else min(end, len(data))
    pos = start
    while pos < size:
        stop = min(pos + window + longest, size)
        hits = [h for h in (data.find(n, pos, stop) for n in needles) if h >= 0]
        _drop(data, pos, min(hits) if hits else pos + window)  # a hit's window too
        if hits:
            return min(hits) + skip
        pos += window
    return -1


def _drop(data: Any, start: int, end: int) -> None:
    """Release the mapped pages of [start, end) that were read (they stay in the page cache;
    they no longer count as this process's memory)."""
    page = mmap.PAGESIZE * (start // mmap.PAGESIZE)
    with contextlib.suppress(AttributeError, OSError, ValueError):
        data.madvise(mmap.MADV_DONTNEED, page, max(0, end - page))


def find_blocks(
    data: Any, head: Head, ids: list[int], region: tuple[int, int], *, stop_at_blobs: bool
) -> dict[int, int]:
    """Positions of the blocks of `ids` (in data order) within `region`. Table data is COPY
    text, which holds no NUL bytes, and no chunk header holds int_size+1 zero bytes in a row,
    so "end-of-block marker, block type, dump id" cannot occur inside a table's block.
    Large-object blocks are binary: nothing after the first one is searched for."""
    start, end = region
    cursor = start
    found: dict[int, int] = {}
    marker = head.int_bytes(0)
    for dump_id in ids:
        header = head.int_bytes(dump_id)
        kinds = (bytes([BLK_DATA]) + header, bytes([BLK_BLOBS]) + header)
        if cursor == start and data[cursor : cursor + len(kinds[0])] in kinds:
            position = cursor
        else:
            position = search(data, tuple(marker + k for k in kinds), cursor, len(marker), end=end)
            if position < 0:
                break
        found[dump_id] = position
        if stop_at_blobs and data[position] == BLK_BLOBS:
            break
        cursor = position + 1
    return found


def record_positions(data: Any, head: Head, positions: dict[int, int]) -> None:
    """Write each dump id's data position into its TOC slot (a flag byte, offSize bytes)."""
    slots = {e.dump_id: e.end - head.off_size - 1 for e in head.entries}
    for dump_id, position in positions.items():
        slot = slots[dump_id]
        data[slot] = K_OFFSET_POS_SET
        data[slot + 1 : slot + 1 + head.off_size] = position.to_bytes(head.off_size, "little")
