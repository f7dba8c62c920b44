"""The one progress display: on stderr, only when a person is watching.

`StepProgress` shows one line with the current step; `DemoSteps` keeps a line per finished
step (the demo). `backup_messages` turns the backup job's events into such lines.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

MessageFn = Callable[[str], None]


class StepProgress:
    """A spinner with the current step on stderr, only when `enabled`."""

    def __init__(self, enabled: bool, first: str = "starting") -> None:
        self.enabled = enabled
        self.first = first
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> StepProgress:
        if self.enabled:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.first)
        return self

    def update(self, message: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=message)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def backup_messages(show: MessageFn) -> Callable[[str, dict[str, Any]], None]:
    """A backup job progress callback that shows each event as one line."""
    tables = 0

    def on_event(event: str, data: dict[str, Any]) -> None:
        nonlocal tables
        if event == "table":
            tables += 1
        if event in ("bytes", "table", "snapshot"):
            raw = data.get("raw")
            stored = data.get("stored") or 0
            text = "dumping"
            if raw is not None:
                text += f": {raw / 2**20:.0f} MiB read, {stored / 2**20:.0f} MiB stored"
            text += f"; {tables} tables fingerprinted"
            show(text)

    return on_event


@dataclass
class DemoSteps:
    """Each step's duration, shown as the run goes and in the closing table."""

    progress: Progress
    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[MessageFn]:
        task = self.progress.add_task(title, total=None)
        started = time.monotonic()

        def update(message: str) -> None:
            self.progress.update(task, description=f"{title}: {message}")

        try:
            yield update
        finally:
            self.seconds[title] = time.monotonic() - started
            self.progress.update(
                task,
                description=f"{title} ({self.seconds[title]:.1f}s)",
                completed=1,
                total=1,
            )
