"""Every database of an instance: a source declared by a pattern (`*`, `app_*`) and exclusions
instead of one database. Each run lists the instance's databases afresh, so one created since
the last run is backed up by the next; each is backed up on its own, filed under its own name,
so it gets its own verifications, evidence, status and alarms. One database failing does not
stop the others.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from ..errors import BackproofError, BadInput, Interrupted
from ..pg.target import Target
from ..store import BackupStore, validate_database_name
from .backup import BackupRequest, BackupResult, run_backup

ProgressFn = Callable[[str, dict[str, Any]], None]

# Never backed up, whatever the pattern: templates, and the databases cloud providers keep for
# themselves (no customer may read them).
ALWAYS_EXCLUDED = (
    "template0",
    "template1",
    "rdsadmin",
    "azure_maintenance",
    "azure_sys",
    "cloudsqladmin",
)

_DATABASES_SQL = """
SELECT datname FROM pg_catalog.pg_database
WHERE datallowconn AND NOT datistemplate
ORDER BY datname COLLATE "C"
"""


@dataclass(frozen=True)
class Selection:
    """Which databases of an instance are sources: shell-style patterns, matched exactly
    (case-sensitive) against each database's name."""

    pattern: str = "*"
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for p in (self.pattern, *self.exclude):
            if not p or not p.strip() or "\x00" in p:
                raise BadInput(
                    f"database pattern {p!r} is empty: use a name or a pattern like app_*"
                )

    def matches(self, name: str) -> bool:
        if name in ALWAYS_EXCLUDED or not fnmatch.fnmatchcase(name, self.pattern):
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in self.exclude)


def filed_name(prefix: str | None, dbname: str) -> str:
    """The name a found database's backups are filed under: `<prefix>.<database>`, or the
    database's own name without a prefix. BadInput when it cannot be an object key."""
    return validate_database_name(f"{prefix}.{dbname}" if prefix else dbname)


def discover(instance: Target, selection: Selection) -> list[str]:
    """The instance's databases the selection names, connecting to `instance`'s database."""
    with instance.connect(autocommit=True) as conn:
        names = [str(row[0]) for row in conn.execute(_DATABASES_SQL).fetchall()]
    return [n for n in names if selection.matches(n)]


@dataclass
class DatabaseOutcome:
    dbname: str
    database: str  # filed under
    result: BackupResult | None = None
    error: BackproofError | None = None

    def summary(self) -> dict[str, Any]:
        if self.result is not None:
            return {"dbname": self.dbname, **self.result.summary(), "database": self.database}
        assert self.error is not None
        return {
            "dbname": self.dbname,
            "database": self.database,
            "error": type(self.error).__name__,
            "message": str(self.error),
            "exit_code": self.error.exit_code,
        }


@dataclass
class InstanceBackup:
    outcomes: list[DatabaseOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[DatabaseOutcome]:
        return [o for o in self.outcomes if o.error is not None]

    def summary(self) -> dict[str, Any]:
        return {
            "databases": [o.summary() for o in self.outcomes],
            "backed_up": len(self.outcomes) - len(self.failed),
            "failed": len(self.failed),
        }


def backup_instance(
    template: BackupRequest,
    selection: Selection,
    prefix: str | None,
    progress: Callable[[str], ProgressFn] | None = None,
) -> InstanceBackup:
    """Back up every database of the instance `template.source` reaches that `selection`
    names, one after another, each as `template` says. BadInput (nothing backed up) when none
    is found; a failure of one database (a name that cannot be filed included) is recorded and
    the next goes on."""
    found = discover(template.source, selection)
    if not found:
        raise BadInput(
            f"no database of {template.source.display} matches {selection.pattern!r}"
            + (f" (excluding {', '.join(selection.exclude)})" if selection.exclude else "")
            + ": check the pattern and that the role may connect to them"
        )
    done = InstanceBackup()
    for dbname in found:
        outcome = DatabaseOutcome(dbname, f"{prefix}.{dbname}" if prefix else dbname)
        try:
            name = filed_name(prefix, dbname)
            request = replace(
                template, source=template.source.with_params(dbname=dbname), database_name=name
            )
            outcome.result = (
                run_backup(request, progress(name)) if progress else run_backup(request)
            )
        except Interrupted:
            raise
        except BackproofError as exc:
            outcome.error = exc
        done.outcomes.append(outcome)
    return done


def current_members(store: BackupStore, name: str, window: timedelta) -> list[str]:
    """The databases of instance `name` its latest runs backed up: those filed as
    `<name>.<database>` whose newest backup is within `window` (the instance's schedule) of the
    newest of all. A database dropped from the instance leaves the list a schedule later, so
    its old backups never alarm as stale; one whose dump fails every run leaves it too, and
    every such run fails, notified and alarmed under that database's name."""
    newest: dict[str, Any] = {}
    for backup in store.list_backups(load=False):
        if backup.database.startswith(f"{name}."):
            when = backup.created_at
            newest[backup.database] = max(newest.get(backup.database, when), when)
    if not newest:
        return []
    latest = max(newest.values())
    return sorted(d for d, when in newest.items() if latest - when <= window)
