"""The manifest: backup ids, round trips, and refusal of anything malformed."""

from __future__ import annotations

import json

import pytest

from backproof.errors import IntegrityError
from backproof.model.manifest import (
    ArchiveInfo,
    Inventory,
    Manifest,
    TableStats,
    backup_id_time,
    is_backup_id,
    new_backup_id,
)


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
