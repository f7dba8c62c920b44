"""Where a verification restores to: one interface, several kinds of instance.

An `Instance` is provisioned, handed out as a `Target` (connection parameters of an
administrative database on a fresh server), and always torn down: on success, on a failed
check, on an exception, on SIGINT/SIGTERM (the CLI turns SIGTERM into an exception, so
`with` blocks unwind). As a last resort, an `atexit` hook tears down anything still live.
"""

from __future__ import annotations

import atexit
import contextlib
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, ClassVar

from ..pg.target import Target
from ..signals import signals_deferred


class Instance(ABC):
    """A throwaway PostgreSQL server for one verification."""

    kind: ClassVar[str] = ""

    @abstractmethod
    def provision(self) -> Target:
        """Create the server and wait until it accepts connections; the target names its
        maintenance database."""

    @abstractmethod
    def teardown(self) -> None:
        """Remove the server and everything it wrote. Idempotent; never raises for 'gone'."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Kind, identifier and server version, for the report."""

    def __enter__(self) -> Target:
        _LIVE.add(self)
        try:
            return self.provision()
        except BaseException:
            self._teardown_and_forget()
            raise

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._teardown_and_forget()

    def _teardown_and_forget(self) -> None:
        with signals_deferred():
            try:
                self.teardown()
            finally:
                _LIVE.discard(self)


_LIVE: set[Instance] = set()


@atexit.register
def _teardown_leftovers() -> None:
    for instance in list(_LIVE):
        with contextlib.suppress(Exception):
            instance._teardown_and_forget()


def live_instances() -> list[Instance]:
    return list(_LIVE)
