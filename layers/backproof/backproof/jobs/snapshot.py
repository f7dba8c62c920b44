"""The backup's snapshot: exported by one read-only repeatable-read transaction, read by every
pg_dump worker and by the inventory, and ended once the dump is done."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ..errors import BackproofError, JobFailed, redact
from ..model.manifest import Inventory
from ..model.sequences import SequenceState, behind_in_source, record_bounds
from ..pg.inventory import take_inventory
from ..pg.sequences import owned_column_extremes, read_sequences
from ..pg.target import Target

ProgressFn = Callable[[str, dict[str, Any]], None]


@dataclass
class Helpers:
    """More connections for the inventory, each importing the backup's snapshot."""

    source: Target
    snapshot: str
    count: int
    lock_wait_timeout_s: int = 0
    idle_timeout_s: int = 0


class InventoryThread(threading.Thread):
    """The inventory, taken in the snapshot while the dump runs; with `helpers`, several
    connections share the tables' fingerprints."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        fingerprints: bool,
        progress: ProgressFn,
        sequences: list[SequenceState],
        helpers: Helpers | None = None,
    ) -> None:
        super().__init__(name="inventory", daemon=True)
        self.conn, self.fingerprints, self.progress = conn, fingerprints, progress
        self.sequences, self.helpers = sequences, helpers
        self.result: Inventory | None = None
        self.error: BaseException | None = None
        self.seconds = 0.0
        self._open: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    def run(self) -> None:
        start = time.monotonic()
        try:
            self.result = take_inventory(
                self.conn,
                fingerprints=self.fingerprints,
                on_table=lambda t: self.progress("table", {"table": t.qualified, "rows": t.rows}),
                sequences=self.sequences,
                helpers=self._connect_helpers(),
            )
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            with self._lock:
                for helper in self._open:
                    helper.close()
                self._open = []
        self.seconds = time.monotonic() - start

    def _connect_helpers(self) -> list[psycopg.Connection[Any]]:
        h = self.helpers
        if h is None or h.count < 1 or not self.fingerprints:
            return []
        for _ in range(h.count):
            try:
                conn = h.source.connect(autocommit=False)
            except BackproofError:
                break  # the server has no connection to spare: fewer helpers, same result
            with self._lock:
                self._open.append(conn)
            begin_snapshot(conn, h.lock_wait_timeout_s, h.idle_timeout_s, imported=h.snapshot)
        return list(self._open)

    def cancel(self) -> None:
        """Cancel the queries in flight (the caller is giving up on the backup)."""
        with self._lock:
            conns = [self.conn, *self._open]
        for conn in conns:
            cancel(conn)


def export_snapshot(
    conn: psycopg.Connection[Any], lock_wait_timeout_s: int, idle_timeout_s: int
) -> tuple[str, Any, str]:
    """Open the read-only repeatable-read transaction whose snapshot pg_dump imports; its
    lock waits are bounded like pg_dump's. (snapshot id, when, txid snapshot)."""
    begin_snapshot(conn, lock_wait_timeout_s, idle_timeout_s)
    row = conn.execute(
        "SELECT pg_export_snapshot(), clock_timestamp(), txid_current_snapshot()::text"
    ).fetchone()
    assert row is not None
    return str(row[0]), row[1], str(row[2])


def begin_snapshot(
    conn: psycopg.Connection[Any],
    lock_wait_timeout_s: int,
    idle_timeout_s: int,
    *,
    imported: str | None = None,
) -> None:
    """A read-only repeatable-read transaction whose lock waits (and idleness) are bounded;
    with `imported`, reading that exported snapshot (set before any query, as it must be)."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    if imported is not None:
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(imported)))
    if lock_wait_timeout_s:
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{lock_wait_timeout_s}s",))
    if idle_timeout_s:
        conn.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', %s, true)",
            (f"{idle_timeout_s}s",),
        )


def read_sequences_now(conn: psycopg.Connection[Any]) -> list[SequenceState]:
    try:
        return read_sequences(conn)
    except psycopg.Error as exc:
        raise inventory_failure(exc) from exc


def finish_sequences(
    conn: psycopg.Connection[Any], sequences: list[SequenceState]
) -> list[SequenceState]:
    """End the snapshot and give each sequence read before the dump its bound, and whether the
    source's own column was already beyond it."""
    extremes = _column_extremes(conn, sequences)  # still in the snapshot
    try:
        conn.rollback()  # ends the snapshot; the transaction was read-only
    except psycopg.OperationalError as exc:
        raise JobFailed(
            "the source ended the backup's snapshot session before the dump finished "
            f"({redact(str(exc)).strip()}); if it was idle_in_transaction_session_timeout, "
            "raise --snapshot-idle-timeout above the dump's duration"
        ) from exc
    return behind_in_source(record_bounds(sequences, _read_again(conn)), extremes)


def _column_extremes(
    conn: psycopg.Connection[Any], sequences: list[SequenceState]
) -> dict[tuple[str, str], int | None]:
    """In the snapshot: each owned sequence's column extreme, so a verification can tell a
    sequence the source itself let fall behind its column from one the restore broke."""
    try:
        with conn.transaction():  # a savepoint: a failure here must not end the snapshot
            return owned_column_extremes(conn, sequences)
    except psycopg.Error:
        return {}


def _read_again(conn: psycopg.Connection[Any]) -> list[SequenceState] | None:
    """Sequences once pg_dump is done, to see which went backwards meanwhile (outside the
    snapshot, which has ended); None if they cannot be read: then no bound is withdrawn."""
    try:
        return read_sequences(conn)
    except psycopg.Error:
        return None
    finally:
        conn.rollback()


def cancel(conn: psycopg.Connection[Any]) -> None:
    try:
        conn.cancel()
    except psycopg.Error:
        pass


def inventory_failure(exc: BaseException) -> BackproofError:
    if isinstance(exc, BackproofError):
        return exc
    return JobFailed(f"taking the inventory of the source failed: {redact(str(exc)).strip()}")
