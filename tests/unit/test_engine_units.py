"""Small pieces of the engine that need no database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backproof.compression import compressor, decompress_stream
from backproof.errors import BackproofError, IntegrityError, ToolNotFound, redact
from backproof.model.manifest import (
    ArchiveInfo,
    Inventory,
    Manifest,
    TableStats,
    backup_id_time,
    is_backup_id,
    new_backup_id,
)
from backproof.pg.programs import find_program, installed


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("could not connect postgresql://app:hunter2@db:5432/x", "hunter2"),
        ("dsn host=db password=hunter2 user=app", "hunter2"),
        ("dsn host=db password='hun ter2' user=app", "hun ter2"),
        ("s3 postgres://u:p%40ss@h/d failed", "p%40ss"),
    ],
)
def test_redact_removes_passwords(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert secret not in str(BackproofError(text))


def test_backup_ids_sort_by_time_and_parse() -> None:
    first, second = new_backup_id(), new_backup_id()
    assert is_backup_id(first) and first[:19] <= second[:19]
    assert backup_id_time(first).tzinfo is not None
    assert not is_backup_id("../../etc/passwd")


def sample_manifest() -> Manifest:
    return Manifest(
        backup_id=new_backup_id(),
        database="shop",
        source_database="shop",
        tier="daily",
        created_at="2026-11-21T05:00:00+00:00",
        snapshot={"id": "00000003-1", "taken_at": "2026-11-21T05:00:01+00:00"},
        server={"version": "15.18", "major": 15, "version_num": 150018},
        tools={"pg_dump": {"version": "15.18", "path": "/usr/bin/pg_dump"}},
        archive=ArchiveInfo("k", "custom", "zstd", 10, "a" * 64, 20, {"type": "AES256"}),
        inventory=Inventory(tables=[TableStats("public", "t", "table", 3, "f" * 32, ["id"])]),
    )


def test_manifest_round_trips() -> None:
    manifest = sample_manifest()
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest
    assert again.inventory.total_rows == 3 and again.server_major == 15


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="other"), "has format 'other'"),
        (lambda d: d.update(format_version=99), "format version 99"),
        (lambda d: d.pop("archive"), "missing or has a malformed field"),
        (lambda d: d["archive"].update(sha256="xyz"), "malformed archive size or sha256"),
        (lambda d: d["archive"].update(compression="lz4"), "unknown compression"),
        (lambda d: d.update(backup_id="../x"), "malformed backup id"),
    ],
)
def test_malformed_manifests_are_refused(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(sample_manifest().to_json())
    mutate(data)
    with pytest.raises(IntegrityError, match=message):
        Manifest.from_json(json.dumps(data))


def test_manifest_that_is_not_json_is_refused() -> None:
    with pytest.raises(IntegrityError, match="not valid JSON"):
        Manifest.from_json(b"\x00garbage")


@pytest.mark.parametrize("kind", ["zstd", "gzip", "none"])
def test_compression_round_trip_in_chunks(kind: str) -> None:
    data = [bytes([i % 251]) * 70_000 + b"tail" for i in range(20)]
    comp = compressor(kind)
    chunks = [comp.compress(d) for d in data] + [comp.flush()]
    assert b"".join(decompress_stream(kind, chunks)) == b"".join(data)


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
