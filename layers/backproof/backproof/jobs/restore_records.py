"""Each operator restore's record (store/records.py), under its id (the report's run id).

Written as soon as the safety backup exists, before anything in the target is replaced, so a
restore that fails half-way can still be rolled back; written again when the restore ends, with
its report. A rollback is a restore too (of the safety backup) and has its own record, naming
the restore it rolled back and the safety backup of what it replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..model.checks import CheckResult
from ..model.report import VerificationReport
from ..model.restore import RestorePlan
from ..pg.target import Target
from ..store.layout import safety_name
from ..store.records import RecordStore, write_restore_record

STARTED, FINISHED = "started", "finished"


@dataclass
class RollbackOf:
    """What makes a restore a rollback: the restore it undoes, and how the target is emptied
    (after the rollback's own safety backup, before the restore of the earlier one)."""

    restore_id: str
    database: str  # the database the rolled-back restore's backup belonged to
    empty_target: Callable[[Target], list[CheckResult]]


def restore_record(
    report: VerificationReport,
    plan: RestorePlan,
    *,
    target_name: str,
    namespace: str,
    rollback_of: RollbackOf | None,
    status: str,
) -> dict[str, Any]:
    finished = status == FINISHED
    return {
        "restore_id": report.run_id,
        "kind": report.kind,
        "status": status,
        "database": rollback_of.database if rollback_of else plan.database,
        "backup": {
            "backup_id": plan.backup_id,
            "filed_under": plan.database,
            "namespace": namespace,
        },
        "target": plan.target,
        "target_name": target_name,
        "target_dbname": plan.target_dbname,
        "tables": plan.tables,
        "clean": plan.clean,
        "safety_backup": report.tools.get("safety_backup"),
        "rolls_back": rollback_of.restore_id if rollback_of else None,
        "started_at": report.started_at,
        "finished_at": report.finished_at if finished else None,
        "verdict": report.verdict if finished else None,
        "report": report.to_dict() if finished else None,
    }


class Recorder:
    """Writes one restore's record as it goes (started, finished)."""

    def __init__(
        self,
        store: RecordStore,
        plan: RestorePlan,
        target: Target,
        *,
        namespace: str,
        rollback_of: RollbackOf | None,
        on_recorded: Callable[[str], None] | None = None,
    ) -> None:
        self.store, self.plan = store, plan
        # The target's identity, as its safety backups are filed: a rollback must name it again.
        self.target_name = safety_name(target.host, target.port, target.dbname)
        self.namespace, self.rollback_of, self.on_recorded = namespace, rollback_of, on_recorded

    def _write(self, report: VerificationReport, status: str) -> str:
        write_restore_record(
            self.store,
            restore_record(
                report,
                self.plan,
                target_name=self.target_name,
                namespace=self.namespace,
                rollback_of=self.rollback_of,
                status=status,
            ),
        )
        return report.run_id

    def started(self, report: VerificationReport) -> None:
        self._write(report, STARTED)
        if self.on_recorded:
            self.on_recorded(report.run_id)

    def finished(self, report: VerificationReport) -> str:
        """The record with the report; the restore's id."""
        return self._write(report, FINISHED)
