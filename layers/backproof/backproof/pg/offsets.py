"""Data positions for custom archives written to a pipe.

pg_dump writing a custom archive to a pipe (as every streamed backup does) cannot go back and
record where each table's data starts, so a parallel pg_restore scans the file to find them:
20-30% slower restores, and a pessimistic measured RTO. The TOC keeps a fixed-width slot for
each position (a flag byte and offSize bytes), so once the archive is a local file the slots
can be filled in place. Layout: src/bin/pg_dump/pg_backup_archiver.c (ReadHead, ReadToc) and
pg_backup_custom.c (_StartData, _ReadExtraToc) in PostgreSQL.
"""

from __future__ import annotations

import contextlib
import mmap
from pathlib import Path
from typing import Any

_K_OFFSET_POS_NOT_SET, _K_OFFSET_POS_SET, _K_OFFSET_NO_DATA = 1, 2, 3
_BLK_DATA, _BLK_BLOBS = 1, 3
_ARCHIVE_CUSTOM = 1
_SUPPORTED_ARCHIVE_VERSIONS = ((1, 12), (1, 16))


class _ArchiveReader:
    def __init__(self, data: Any, pos: int = 0) -> None:
        self.data, self.pos, self.int_size = data, pos, 4

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return int(value)

    def int_(self) -> int:
        sign = self.byte()
        raw = bytes(self.data[self.pos : self.pos + self.int_size])
        self.pos += self.int_size
        if sign not in (0, 1) or len(raw) != self.int_size:
            raise ValueError("malformed integer in archive")
        value = int.from_bytes(raw, "little")
        return -value if sign else value

    def skip_str(self) -> bool:
        """Skip a string; False for the NULL string (length -1)."""
        length = self.int_()
        if length < -1:
            raise ValueError("malformed string length in archive")
        self.pos += max(length, 0)
        return length != -1


def _int_bytes(value: int, int_size: int) -> bytes:
    return b"\x00" + value.to_bytes(int_size, "little")


def _read_toc_slots(data: Any) -> tuple[list[tuple[int, int, int]], int, int, int]:
    """[(dump id, slot position, flag)] for every TOC entry, the data start, intSize, offSize.
    ValueError for anything unexpected."""
    if bytes(data[:5]) != b"PGDMP":
        raise ValueError("not a custom-format archive")
    version = (data[5], data[6])
    if not _SUPPORTED_ARCHIVE_VERSIONS[0] <= version <= _SUPPORTED_ARCHIVE_VERSIONS[1]:
        raise ValueError(f"archive version {version} not handled")
    reader = _ArchiveReader(data, 8)
    reader.int_size = reader.byte()
    off_size = reader.byte()
    if reader.byte() != _ARCHIVE_CUSTOM or not 1 <= reader.int_size <= 8 or off_size < 4:
        raise ValueError("not a custom-format archive")
    if version >= (1, 15):
        reader.byte()  # compression algorithm
    else:
        reader.int_()  # compression level
    for _ in range(7):  # creation time
        reader.int_()
    for _ in range(3):  # database name, server version, pg_dump version
        reader.skip_str()
    slots = [_read_toc_entry(reader, version, off_size) for _ in range(reader.int_())]
    return slots, reader.pos, reader.int_size, off_size


def _read_toc_entry(
    reader: _ArchiveReader, version: tuple[int, int], off_size: int
) -> tuple[int, int, int]:
    dump_id = reader.int_()
    had_dumper = reader.int_()
    if dump_id <= 0 or had_dumper not in (0, 1):
        raise ValueError("malformed TOC entry")
    for _ in range(4):  # tableoid, oid, tag, desc
        reader.skip_str()
    reader.int_()  # section
    for _ in range(6):  # defn, dropStmt, copyStmt, namespace, tablespace, tableam
        reader.skip_str()
    if version >= (1, 16):
        reader.int_()  # relkind
    reader.skip_str()  # owner
    reader.skip_str()  # "false" (with oids)
    while reader.skip_str():  # dependencies, NULL-terminated
        pass
    flag = reader.byte()
    if flag not in (_K_OFFSET_POS_NOT_SET, _K_OFFSET_POS_SET, _K_OFFSET_NO_DATA):
        raise ValueError("malformed data offset in TOC")
    slot = reader.pos - 1
    reader.pos += off_size
    return dump_id, slot, flag


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


def add_data_offsets(path: Path) -> int:
    """Record each data block's position in the TOC of a custom archive written to a pipe.

    Returns how many positions were filled; 0 (file untouched) when there is nothing to do or
    anything about the archive is unexpected. Blocks are found in TOC order: table data is
    COPY text, which holds no NUL bytes, and no chunk header holds five zero bytes in a row,
    so "end-of-block marker, block type, dump id" cannot occur inside a block. Large-object
    blocks are binary, so nothing after the first one is searched for.
    """
    with path.open("r+b") as fh:
        if path.stat().st_size < 32:
            return 0
        with mmap.mmap(fh.fileno(), 0) as data:
            try:
                slots, cursor, int_size, off_size = _read_toc_slots(data)
            except (ValueError, IndexError):
                return 0
            found: list[tuple[int, int]] = []
            for dump_id, slot, flag in slots:
                if flag != _K_OFFSET_POS_NOT_SET:
                    continue
                header = _int_bytes(dump_id, int_size)
                if (
                    data[cursor] in (_BLK_DATA, _BLK_BLOBS)
                    and data[cursor + 1 : cursor + 1 + len(header)] == header
                ):
                    position = cursor
                else:
                    marker = b"\x00" * (int_size + 1)
                    position = search(
                        data,
                        (
                            marker + bytes([_BLK_DATA]) + header,
                            marker + bytes([_BLK_BLOBS]) + header,
                        ),
                        cursor,
                        int_size + 1,
                    )
                if position < 0:
                    break
                found.append((slot, position))
                if data[position] == _BLK_BLOBS:
                    break
                cursor = position + 1
            if not found or found[0][1] != _read_toc_slots(data)[1]:
                return 0  # the first block must start right after the TOC, or we misread it
            for slot, position in found:
                data[slot] = _K_OFFSET_POS_SET
                data[slot + 1 : slot + 1 + off_size] = position.to_bytes(off_size, "little")
            data.flush()
    return len(found)
