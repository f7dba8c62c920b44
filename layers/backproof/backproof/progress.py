"""Progress display for long steps, on stderr, only when a person is watching."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class BackupProgress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task: Any = None
        self._tables = 0

    def __enter__(self) -> BackupProgress:
        if self.enabled:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("connecting to the source")
        return self

    def update(self, event: str, data: dict[str, Any]) -> None:
        if not self._progress:
            return
        if event == "table":
            self._tables += 1
        if event in ("bytes", "table", "snapshot"):
            raw = data.get("raw")
            stored = data.get("stored") or 0
            text = "dumping"
            if raw is not None:
                text += f": {raw / 2**20:.0f} MiB read, {stored / 2**20:.0f} MiB stored"
            text += f"; {self._tables} tables fingerprinted"
            self._progress.update(self._task, description=text)

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress:
            self._progress.stop()
