"""Data positions filled into archives that pg_dump wrote to a pipe: the same positions pg_dump
records itself when it can seek, and anything unexpected leaves the file untouched."""

from __future__ import annotations

import mmap
import os
import subprocess
from pathlib import Path

from backproof.pg.archive import parse_head
from backproof.pg.offsets import add_data_offsets
from backproof.pg.programs import find_program

from ..conftest import SourceDatabase


def toc_offsets(path: Path) -> list[tuple[int, int, int]]:
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        head = parse_head(data)
        return [
            (e.dump_id, e.flag, int.from_bytes(data[e.end - head.off_size : e.end], "little"))
            for e in head.entries
        ]


def test_positions_match_what_pg_dump_records_when_it_can_seek(
    awkward_db: SourceDatabase, tmp_path: Path
) -> None:
    # Given the same database dumped to a file (pg_dump records positions) and to a pipe
    pg_dump = find_program("pg_dump", min_major=13, purpose="test")
    env = {**os.environ, **awkward_db.cluster.env()}
    seekable, piped = tmp_path / "seekable.dump", tmp_path / "piped.dump"
    args = [str(pg_dump.path), "--format=custom", "--compress=0", awkward_db.dbname]
    subprocess.run([*args, f"--file={seekable}"], env=env, check=True)
    with piped.open("wb") as out:
        dump = subprocess.Popen(args, env=env, stdout=subprocess.PIPE)
        assert dump.stdout is not None
        subprocess.run(["cat"], stdin=dump.stdout, stdout=out, check=True)
        assert dump.wait() == 0
    before = toc_offsets(piped)
    assert any(flag == 1 for _, flag, _ in before)  # pipe: positions not set
    # When the positions are filled in
    filled = add_data_offsets(piped)
    # Then they are exactly pg_dump's own, up to the large-object block (binary, not searched)
    expected = toc_offsets(seekable)
    after = toc_offsets(piped)
    assert filled >= 10
    patched = [(d, o) for d, flag, o in after if flag == 2]
    assert patched == [(d, o) for d, flag, o in expected if flag == 2][: len(patched)]
    assert len(patched) == filled
    # And pg_restore reads the same table of contents as before
    pg_restore = find_program("pg_restore", min_major=13, purpose="test")
    listing = [
        subprocess.run(
            [str(pg_restore.path), "--list", str(p)], capture_output=True, text=True, check=True
        ).stdout.splitlines()[3:]
        for p in (seekable, piped)
    ]
    assert [x for x in listing[0] if not x.startswith(";")] == [
        x for x in listing[1] if not x.startswith(";")
    ]
    # And a second pass has nothing left to do
    assert add_data_offsets(piped) == 0


def test_anything_unexpected_leaves_the_file_untouched(tmp_path: Path) -> None:
    for name, body in (
        ("empty", b""),
        ("text", b"not an archive at all" * 10),
        ("truncated", b"PGDMP\x01\x0e\x00\x04\x08\x01" + b"\x00" * 30),
    ):
        path = tmp_path / name
        path.write_bytes(body)
        assert add_data_offsets(path) == 0
        assert path.read_bytes() == body
