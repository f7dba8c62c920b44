"""Finding PostgreSQL programs by major version."""

from __future__ import annotations

from pathlib import Path

import pytest

from backproof.errors import ToolNotFound
from backproof.pg.programs import find_program, installed


def fake_program(directory: Path, name: str, version: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
    path.chmod(0o755)


def test_find_program_picks_newest_fitting_or_nearest_preferred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("backproof.pg.programs.SYSTEM_BIN_GLOBS", ())
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("BACKPROOF_PG_BIN_DIR", raising=False)
    monkeypatch.delenv("BACKPROOF_PG_BIN_DIRS", raising=False)
    dirs = []
    for major in (13, 16, 17):
        d = tmp_path / str(major)
        fake_program(d, "pg_dump", f"{major}.2")
        dirs.append(d)
    assert [p.major for p in installed("pg_dump", dirs)] == [17, 16, 13]
    assert find_program("pg_dump", min_major=14, purpose="t", extra_dirs=dirs).major == 17
    chosen = find_program("pg_dump", min_major=14, prefer_major=14, purpose="t", extra_dirs=dirs)
    assert chosen.major == 16
    with pytest.raises(ToolNotFound, match=r"needs pg_dump 18 or newer; found: 17\.2"):
        find_program("pg_dump", min_major=18, purpose="backing up", extra_dirs=dirs)
