"""Helpers for the verify/restore tests: real backups (made bad on purpose when asked), an
isolated temporary directory so teardown can be proven, and a process scan."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backproof.instances import live_instances


@pytest.fixture
def isolated_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every temporary file and cluster of the test lands here, so leftovers can be seen."""
    root = Path(tempfile.mkdtemp(prefix="bp-verify-test-", dir="/tmp"))
    root.chmod(0o755)  # the cluster runs as `postgres` and must traverse it
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.setenv("TMPDIR", str(root))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        pid = entry.name
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = (
                Path(f"/proc/{pid}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline.strip()}")
    return found


def postgres_processes_in(root: Path) -> list[str]:
    """Server processes whose data directory is under `root` (postmaster children share its
    cmdline only through the postmaster, so look for the postmaster's -D and pidfiles)."""
    return processes_mentioning(str(root))


def assert_torn_down(root: Path) -> None:
    leftovers = sorted(str(p) for p in root.iterdir())
    assert leftovers == [], f"left behind: {leftovers}"
    assert postgres_processes_in(root) == []
    assert live_instances() == []


def failed_checks(report: dict[str, Any]) -> set[str]:
    return {c["check"] for c in report["checks"] if c["verdict"] == "fail"}


def failed_subjects(report: dict[str, Any], check: str) -> set[str]:
    return {
        c["subject"] for c in report["checks"] if c["verdict"] == "fail" and c["check"] == check
    }
