"""A local ephemeral cluster (initdb + pg_ctl on a free loopback port) as a restore target.

It restores as one of two roles (`restore_as`):

- `rds-master` (the default): a LOGIN role with CREATEDB and CREATEROLE in an `rds_superuser`
  group, as the temporary RDS instance's master user is (pg/master_role.py). The local proof
  then fails exactly where the deployed one would: objects only a superuser can create.
- `superuser`: the cluster's bootstrap superuser, for databases that legitimately hold such
  objects and are never restored on RDS (self-hosted servers, PostgreSQL's regression database).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import BadInput
from ..pg.cluster import SUPERUSER, LocalCluster
from ..pg.master_role import MASTER_USER, create_rds_master
from ..pg.programs import PgProgram, find_program
from ..pg.target import Target
from .base import Instance

RDS_MASTER, SUPERUSER_MODE = "rds-master", "superuser"
RESTORE_AS = (RDS_MASTER, SUPERUSER_MODE)
RDS_BOOTSTRAP = "rdsadmin"  # RDS's own superuser, which no login of ours can become


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
        restore_as: str = RDS_MASTER,
        **_ignored: Any,
    ) -> None:
        if restore_as not in RESTORE_AS:
            raise BadInput(f"unknown restore role {restore_as!r}: use {' or '.join(RESTORE_AS)}")
        self.major = major
        self.restore_as = restore_as
        self.restore_role = MASTER_USER if restore_as == RDS_MASTER else SUPERUSER
        self.server = local_server_for(major, extra_dirs)
        self.cluster = LocalCluster(
            major=self.server.major,
            settings=settings or {},
            name="backproof-verify",
            # As on RDS: the bootstrap superuser is rdsadmin, so a source role named like our
            # own superuser (`backproof`) is created by the restore and can own objects.
            superuser=RDS_BOOTSTRAP if restore_as == RDS_MASTER else SUPERUSER,
        )

    def provision(self) -> Target:
        self.cluster.start()
        admin = self.cluster.target("postgres")
        return create_rds_master(admin) if self.restore_as == RDS_MASTER else admin

    def teardown(self) -> None:
        self.cluster.stop()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "server_version": self.cluster.version or self.server.version,
            "server_major": self.server.major,
            "requested_major": self.major,
            "port": self.cluster.port,
            "restore_as": self.restore_as,
            "restore_role": self.restore_role,
        }

    @property
    def workdir(self) -> Path | None:
        return self.cluster.workdir
