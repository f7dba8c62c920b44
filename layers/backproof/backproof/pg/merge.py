"""One custom archive from a split backup, for pg_restore.

A backup taken with several dump workers is several custom archives from one snapshot: the
main one (everything, less the data of the tables the other workers took) and data-only parts
(`pg_dump --data-only --table=…`). pg_restore reads one archive, so a verification or a
restore merges them as it decompresses them:

    main header | main TOC + each part's TABLE DATA entries | main data | part data | …

A part's entries get fresh dump ids and depend on the main archive's TABLE entry of their
table, as pg_dump's own do (so a parallel pg_restore builds indexes and constraints after the
data). Every data block's position is recorded in the TOC, so pg_restore seeks instead of
scanning. The archives stream through once; only their TOCs are held in memory.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .archive import (
    K_OFFSET_NO_DATA,
    K_OFFSET_POS_NOT_SET,
    SECTION_DATA,
    SECTION_PRE_DATA,
    ArchiveFormatError,
    Entry,
    Head,
    find_blocks,
    parse_head,
    read_head,
    record_positions,
)

# A split backup is taken only with a pg_dump whose archives this merges (archive versions
# 1.14 to 1.16).
MERGEABLE_PG_DUMP = range(12, 19)


@dataclass
class _Part:
    head: Head
    tables: list[Entry]  # its TABLE DATA entries, in data order
    new_ids: dict[int, int]  # part dump id -> merged dump id
    region: tuple[int, int] = (0, 0)  # where its data lies in the merged file


def merge(main: Iterable[bytes], parts: Sequence[Iterable[bytes]], out: Path) -> int:
    """Write the merged archive to `out` from the decompressed streams of the main archive and
    each part (each is iterated once, in order: the main one, then the parts). Returns the
    number of data positions recorded. ArchiveFormatError when the archives do not fit
    together (a part's table missing from the main archive, different formats)."""
    chunks = iter(main)
    head, rest = read_head(chunks)
    part_streams = [iter(p) for p in parts]
    part_heads = [read_head(s) for s in part_streams]
    planned = _plan(head, [h for h, _ in part_heads])
    with out.open("wb") as fh:
        fh.write(_merged_head(head, planned))
        main_start = fh.tell()
        _copy(fh, rest, chunks)
        main_end = fh.tell()
        for part, (_, leftover), stream in zip(planned, part_heads, part_streams, strict=True):
            start = fh.tell()
            _copy(fh, leftover, stream)
            part.region = (start, fh.tell())
    return _record_positions(out, head, planned, (main_start, main_end))


def _plan(head: Head, part_heads: list[Head]) -> list[_Part]:
    tables = {(e.namespace, e.tag): e.dump_id for e in head.entries if e.desc == "TABLE"}
    next_id = max((e.dump_id for e in head.entries), default=0) + 1
    planned: list[_Part] = []
    for ph in part_heads:
        if (ph.version, ph.int_size, ph.off_size) != (head.version, head.int_size, head.off_size):
            raise ArchiveFormatError("a part was written by another pg_dump than the main archive")
        data = [e for e in ph.entries if e.flag != K_OFFSET_NO_DATA]
        if any(e.desc != "TABLE DATA" for e in data):
            raise ArchiveFormatError("a part holds data other than tables' rows")
        new_ids: dict[int, int] = {}
        for e in data:
            if (e.namespace, e.tag) not in tables:
                raise ArchiveFormatError(
                    f"the data of {e.namespace}.{e.tag} has no table in the main archive"
                )
            new_ids[e.dump_id] = next_id
            next_id += 1
        planned.append(_Part(ph, data, new_ids))
    return planned


def _merged_head(head: Head, parts: list[_Part]) -> bytes:
    """The main header and TOC, with the parts' entries after the last pre-data or data entry
    (before constraints, indexes and grants)."""
    tables = {(e.namespace, e.tag): e.dump_id for e in head.entries if e.desc == "TABLE"}
    added: list[bytes] = []
    for part in parts:
        ph = part.head
        for e in part.tables:
            added.append(
                head.int_bytes(part.new_ids[e.dump_id])
                + ph.raw[e.body : e.deps_at]
                + head.str_bytes(str(tables[(e.namespace, e.tag)]))
                + head.str_bytes(None)
                + bytes([K_OFFSET_POS_NOT_SET])
                + bytes(head.off_size)
            )
    # Positions are found again after the merge: a slot pg_dump filled would now be wrong.
    own = [
        head.raw[e.start : e.end - head.off_size - 1]
        + bytes([K_OFFSET_NO_DATA if e.flag == K_OFFSET_NO_DATA else K_OFFSET_POS_NOT_SET])
        + bytes(head.off_size)
        for e in head.entries
    ]
    at = 1 + max(
        (i for i, e in enumerate(head.entries) if e.section in (SECTION_PRE_DATA, SECTION_DATA)),
        default=len(own) - 1,
    )
    toc = own[:at] + added + own[at:]
    return b"".join([head.raw[: head.count_at], head.int_bytes(len(toc)), *toc])


def _copy(fh: BinaryIO, first: bytes, chunks: Iterator[bytes]) -> None:
    if first:
        fh.write(first)
    for chunk in chunks:
        fh.write(chunk)


def _record_positions(
    out: Path, head: Head, parts: list[_Part], main_region: tuple[int, int]
) -> int:
    """Find every data block, give the parts' blocks their merged dump ids, and write each
    position into the merged TOC."""
    with out.open("r+b") as fh, mmap.mmap(fh.fileno(), 0) as data:
        merged = parse_head(bytes(data[: main_region[0]]))
        positions: dict[int, int] = {}
        main_ids = [e.dump_id for e in head.entries if e.flag != K_OFFSET_NO_DATA]
        positions.update(find_blocks(data, head, main_ids, main_region, stop_at_blobs=True))
        for part in parts:
            found = find_blocks(
                data, head, [e.dump_id for e in part.tables], part.region, stop_at_blobs=False
            )
            if len(found) != len(part.tables):
                raise ArchiveFormatError("a part's data blocks are not where its TOC says")
            for old, position in found.items():
                new = part.new_ids[old]
                data[position + 1 : position + 2 + head.int_size] = head.int_bytes(new)
                positions[new] = position
        record_positions(data, merged, positions)
        data.flush()
    return len(positions)
