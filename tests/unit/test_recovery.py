"""Recovery time and point (model/recovery.py), the report's section, and status against
RTO/RPO targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backproof.jobs.status import DatabaseStatus, Run
from backproof.model.recovery import (
    MET,
    MISSED,
    UNKNOWN,
    RecoveryTargets,
    recovery,
    recovery_seconds,
)
from backproof.model.report import VerificationReport

TIMINGS = {
    "integrity_seconds": 30.0,
    "instance_seconds": 200.0,
    "decompress_seconds": 50.0,
    "restore_seconds": 300.0,
    "checks_seconds": 20.0,
    "teardown_seconds": 90.0,
    "total_seconds": 645.0,
}


def test_recovery_counts_every_step_to_a_checked_database_but_not_the_teardown() -> None:
    # decompression overlaps the instance start: the slower of the two counts
    assert recovery_seconds(TIMINGS) == 30 + 200 + 300 + 20


def test_no_recovery_is_measured_unless_the_restore_was_checked() -> None:
    assert recovery_seconds({"integrity_seconds": 3.0}) is None
    section = recovery({"integrity_seconds": 3.0}, "2026-11-21T02:00:00+00:00", None, None)
    assert section["recovery_seconds"] is None and section["rto"] == UNKNOWN


def test_recovery_point_age_and_verdicts_against_targets() -> None:
    targets = RecoveryTargets(rto=timedelta(minutes=10), rpo=timedelta(hours=1))
    section = recovery(TIMINGS, "2026-11-21T02:00:00+00:00", "2026-11-21T02:30:00+00:00", targets)
    assert section["recovery_point_age_seconds"] == 1800.0
    assert section["rto_target_seconds"] == 600.0 and section["rpo_target_seconds"] == 3600.0
    assert section["rto"] == MET and section["rpo"] == MET
    late = recovery(TIMINGS, "2026-11-21T00:00:00+00:00", "2026-11-21T02:30:00+00:00", targets)
    assert late["rpo"] == MISSED
    slow = recovery(
        {**TIMINGS, "restore_seconds": 3000.0},
        "2026-11-21T02:00:00",  # naive times are UTC
        "2026-11-21T02:30:00+00:00",
        targets,
    )
    assert slow["rto"] == MISSED and slow["recovery_point_age_seconds"] == 1800.0


def test_the_report_carries_the_recovery_section_in_evidence_and_summary() -> None:
    report = VerificationReport(
        "b1", "shop", timings=dict(TIMINGS), snapshot_taken_at="2026-11-21T02:00:00+00:00"
    )
    report.targets = RecoveryTargets(rto=timedelta(minutes=5))
    report.finished_at = "2026-11-21T03:00:00+00:00"
    evidence = report.to_dict()["recovery"]
    assert evidence["recovery_seconds"] == 550.0 and evidence["rto"] == MISSED
    assert evidence["recovery_point_age_seconds"] == 3600.0 and evidence["rpo"] == UNKNOWN
    assert report.summary()["recovery"] == evidence


def _run(restore: float | None, measured: float | None) -> Run:
    now = datetime.now(UTC)
    return Run("verified", "b1", now, 0.0, restore, None, measured, 1800.0)


def test_status_holds_the_measured_recovery_and_the_data_age_against_targets() -> None:
    status = DatabaseStatus(
        "shop",
        timedelta(hours=26),
        restore=_run(300.0, 550.0),
        rto_target=timedelta(minutes=5),
        rpo_target=timedelta(hours=1),
    )
    # the end-to-end time, not the restore alone, is held against the RTO
    assert status.recovery_seconds == 550.0 and status.rto_met is False
    assert status.rpo_met is None  # nothing verified: no data age to hold against it
    data = status.to_dict()
    assert data["recovery_point_age_seconds"] == 1800.0 and data["rpo_target_seconds"] == 3600
    # a report from before recovery was measured: the restore time stands in
    older = DatabaseStatus("shop", timedelta(hours=26), restore=_run(250.0, None))
    older.rto_target = timedelta(minutes=5)
    assert older.recovery_seconds == 250.0 and older.rto_met is True
