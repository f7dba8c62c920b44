"""A local ephemeral cluster (initdb + pg_ctl on a free loopback port) as a restore target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..pg.cluster import LocalCluster
from ..pg.programs import PgProgram, find_program
from ..pg.target import Target
from .base import Instance


def local_server_for(major: int, extra_dirs: list[Path] | None = None) -> PgProgram:
    """The installed server of `major` or the nearest newer one; ToolNotFound (exit 2) if none.

    Called before anything is created, so a missing server fails fast with nothing to undo.
    """
    return find_program(
        "postgres",
        min_major=major,
        prefer_major=major,
        extra_dirs=extra_dirs,
        purpose=f"restoring a backup of a PostgreSQL {major} server into a local cluster",
    )


class LocalInstance(Instance):
    kind = "local"

    def __init__(
        self,
        *,
        major: int,
        settings: dict[str, str] | None = None,
        extra_dirs: list[Path] | None = None,
        **_ignored: Any,
    ) -> None:
        self.major = major
        self.server = local_server_for(major, extra_dirs)
        self.cluster = LocalCluster(
            major=self.server.major, settings=settings or {}, name="backproof-verify"
        )

    def provision(self) -> Target:
        self.cluster.start()
        return self.cluster.target("postgres")

    def teardown(self) -> None:
        self.cluster.stop()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "server_version": self.cluster.version or self.server.version,
            "server_major": self.server.major,
            "requested_major": self.major,
            "port": self.cluster.port,
        }

    @property
    def workdir(self) -> Path | None:
        return self.cluster.workdir
