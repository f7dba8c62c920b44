"""The jobs: backup, integrity, checks, verify, restore, retention, listing. Plain functions over
typed requests that return data; no argument parsing, no printing, no exit codes."""

from __future__ import annotations

import os

from ..contract import TASK_CPU_ENV


def default_jobs() -> int:
    """Parallel jobs when the caller names none: the Fargate task's vCPUs (from the CPU units
    the workflow gave it), else this machine's cores."""
    units = os.environ.get(TASK_CPU_ENV, "")
    if units.isdigit() and int(units) >= 1024:
        return int(units) // 1024
    return os.cpu_count() or 1
