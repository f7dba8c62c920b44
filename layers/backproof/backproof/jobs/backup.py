"""Take a backup: one snapshot, a streamed archive, a manifest written last.

1. Open a read-only repeatable-read transaction on the source and export its snapshot.
2. Run `pg_dump --snapshot` so the archive shows exactly that instant, while the same
   transaction takes the inventory (row counts, fingerprints, object counts).
3. Compress, hash and upload the archive in parts as pg_dump writes it.
4. Store the cluster's roles (read in the snapshot) beside it as roles.json.
5. Write the manifest last (its signature, when signing is configured, just before it). A
   failure anywhere aborts the upload: no manifest, no backup.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from .. import __version__
from ..compression import compressor
from ..errors import BackproofError, BadInput, DumpFailed, JobFailed, LockWaitTimeout, redact
from ..model.manifest import COMPRESSIONS, TIERS, ArchiveInfo, Inventory, Manifest, new_backup_id
from ..model.sequences import SequenceState, behind_in_source, record_bounds
from ..pg.dump import READ_CHUNK, PgDump
from ..pg.inventory import take_inventory
from ..pg.locks import holders, waited_for
from ..pg.programs import find_program
from ..pg.roles import read_roles
from ..pg.sequences import owned_column_extremes, read_sequences
from ..pg.target import Target
from ..signals import signals_deferred
from ..signing import Signing, Statement
from ..store import BACKUPS, BackupStore, MultipartUpload, validate_database_name
from .ownership import store_roles
from .signatures import MANIFEST, seal

ProgressFn = Callable[[str, dict[str, Any]], None]
# Ten minutes: long enough for a quick DDL, short enough not to hold vacuum back for hours.
DEFAULT_LOCK_WAIT_S = 600


@dataclass
class BackupRequest:
    source: Target
    store: BackupStore
    database_name: str
    tier: str = "manual"
    compression: str = "zstd"
    fingerprints: bool = True
    pg_bin_dir: Path | None = None
    # Passed through to pg_dump (e.g. --exclude-table-data). The inventory still describes the
    # whole database, so a verification will point out what the dump left out.
    extra_pg_dump_args: list[str] = field(default_factory=list)
    # BACKUPS for a database's own backups; SAFETY for the state of a restore target taken
    # before a restore (filed under the target's name, never a database's `latest`).
    namespace: str = BACKUPS
    # How long pg_dump (and the inventory) may wait for a table lock, in seconds; 0: forever.
    # Meanwhile the exported snapshot holds back vacuum on the whole source.
    lock_wait_timeout_s: int = DEFAULT_LOCK_WAIT_S
    # The source ends the snapshot's session when backproof leaves it idle this long (a hung
    # or killed task must not hold the snapshot for a day); must exceed the longest dump. 0: off.
    snapshot_idle_timeout_s: int = 0
    # With a signer, the manifest's signature is stored just before it (jobs/signatures.py).
    signing: Signing | None = None


@dataclass
class BackupResult:
    manifest: Manifest
    manifest_key: str

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "backup_id": m.backup_id,
            "archive_key": m.archive.key,
            "manifest_key": self.manifest_key,
            "size": m.archive.size,
            "sha256": m.archive.sha256,
            "tables": len(m.inventory.tables),
            "rows": m.inventory.total_rows,
            "seconds": round(m.timings.get("total_seconds", 0.0), 3),
        }


def validate_request(req: BackupRequest) -> None:
    validate_database_name(req.database_name)
    if req.tier not in TIERS:
        raise BadInput(f"unknown tier {req.tier!r}: use one of {', '.join(TIERS)}")
    if req.compression not in COMPRESSIONS:
        raise BadInput(
            f"unknown compression {req.compression!r}: use one of {', '.join(COMPRESSIONS)}"
        )


class _InventoryThread(threading.Thread):
    def __init__(
        self,
        conn: psycopg.Connection[Any],
        fingerprints: bool,
        progress: ProgressFn,
        sequences: list[SequenceState],
    ) -> None:
        super().__init__(name="inventory", daemon=True)
        self.conn, self.fingerprints, self.progress = conn, fingerprints, progress
        self.sequences = sequences
        self.result: Inventory | None = None
        self.error: BaseException | None = None
        self.seconds = 0.0

    def run(self) -> None:
        start = time.monotonic()
        try:
            self.result = take_inventory(
                self.conn,
                fingerprints=self.fingerprints,
                on_table=lambda t: self.progress("table", {"table": t.qualified, "rows": t.rows}),
                sequences=self.sequences,
            )
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        self.seconds = time.monotonic() - start


def _noop(event: str, data: dict[str, Any]) -> None:
    return None


def run_backup(req: BackupRequest, progress: ProgressFn = _noop) -> BackupResult:
    """Take one backup. Raises a BackproofError subclass; on any failure nothing is listed."""
    validate_request(req)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    conn = req.source.connect(autocommit=False)
    try:
        return _backup_in_snapshot(req, conn, started, t0, progress)
    finally:
        conn.close()


def _backup_in_snapshot(
    req: BackupRequest,
    conn: psycopg.Connection[Any],
    started: datetime,
    t0: float,
    progress: ProgressFn,
) -> BackupResult:
    server_num = conn.info.server_version
    server = {
        "version": conn.execute("SHOW server_version").fetchone()[0],  # type: ignore[index]
        "major": server_num // 10000,
        "version_num": server_num,
    }
    extra_dirs = [req.pg_bin_dir] if req.pg_bin_dir else None
    pg_dump = find_program(
        "pg_dump",
        min_major=server["major"],
        extra_dirs=extra_dirs,
        purpose=f"backing up a PostgreSQL {server['version']} server",
    )
    req.store.check_writable()

    snapshot_id, taken_at, txid = _export_snapshot(conn, req)
    # What a restore will need room for (jobs/space.py), read inside the snapshot.
    size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    server["database_size"] = int(size[0]) if size else 0
    backup_id = new_backup_id(started)
    key = req.store.archive_key(req.database_name, backup_id, req.compression, req.namespace)
    directory = req.store.backup_prefix(req.database_name, backup_id, req.namespace)
    # Sequences are not transactional: read them now, before pg_dump reads them, so what the
    # manifest records is a bound pg_dump's values satisfy (model/sequences.py).
    sequences = _read_sequences(conn)
    progress("snapshot", {"snapshot": snapshot_id, "backup_id": backup_id})
    roles = read_roles(conn)  # the cluster's roles as of the snapshot (no passwords)

    upload = req.store.open_upload(key, tier=req.tier)
    dump = PgDump(pg_dump, req.source, snapshot_id, _dump_args(conn, req))
    inventory = _InventoryThread(conn, req.fingerprints, progress, sequences)
    try:
        dump.start()
        inventory.start()
        raw_size, sha256 = _stream(dump, upload, req.compression, progress)
        code = dump.wait()
        if code != 0:
            raise _dump_failure(req, dump, code)
        dump_seconds = time.monotonic() - t0
        inventory.join()
        if inventory.error is not None:
            raise _inventory_failure(inventory.error)
        info = upload.complete()
    except BaseException:
        with signals_deferred():
            dump.kill()
            upload.abort()
            if inventory.is_alive():
                _cancel(conn)
                inventory.join(timeout=30)
        raise
    try:
        assert inventory.result is not None
        inventory.result.sequences = _finish_sequences(conn, sequences)  # ends the snapshot

        manifest = Manifest(
            backup_id=backup_id,
            database=req.database_name,
            source_database=req.source.dbname,
            tier=req.tier,
            created_at=started.isoformat(),
            snapshot={
                "id": snapshot_id,
                "taken_at": taken_at.astimezone(UTC).isoformat(),
                "txid_snapshot": txid,
            },
            server=server,
            tools={
                "pg_dump": {"version": pg_dump.version, "path": str(pg_dump.path)},
                "backproof": __version__,
            },
            archive=ArchiveInfo(
                key=key,
                format="custom",
                compression=req.compression,
                size=info.size,
                sha256=sha256,
                raw_size=raw_size,
                encryption=info.encryption,
            ),
            inventory=inventory.result,
            dump_options={"extra_args": req.extra_pg_dump_args, "fingerprints": req.fingerprints},
            roles=store_roles(req.store, directory, roles, tier=req.tier),
        )
        manifest.timings = {
            "dump_seconds": round(dump_seconds, 3),
            "inventory_seconds": round(inventory.seconds, 3),
            "total_seconds": round(time.monotonic() - t0, 3),
        }
        manifest_key = directory + "manifest.json"
        _write_manifest(req, manifest_key, manifest)
        progress("done", {"backup_id": backup_id, "size": info.size})
        return BackupResult(manifest, manifest_key)
    except BaseException:
        # The archive is complete but no manifest vouches for it yet: remove it, so a failure
        # or a signal at this point leaves nothing behind either.
        with signals_deferred(), contextlib.suppress(BackproofError):
            # If even that fails (no delete permission, the store unreachable), the directory
            # has no manifest, so it is not a backup; retention removes it after a day. The
            # failure that got us here is the one to report.
            req.store.delete_prefix(directory)
        raise


def _write_manifest(req: BackupRequest, key: str, manifest: Manifest) -> None:
    """The manifest, last; its signature (with a signer) just before it, so a manifest never
    exists unsigned when signing is configured."""
    data = manifest.to_json()
    statement = Statement.of(MANIFEST, manifest.backup_id, manifest.database, key, data)
    seal(req.store, req.signing, statement, tier=req.tier)
    req.store.put_bytes(key, data, tier=req.tier)


def _stream(
    dump: PgDump, upload: MultipartUpload, compression: str, progress: ProgressFn
) -> tuple[int, str]:
    stdout = dump.stdout
    comp = compressor(compression)
    digest = hashlib.sha256()
    raw = 0
    read = stdout.read1 if hasattr(stdout, "read1") else stdout.read
    next_report = 0
    while True:
        chunk = read(READ_CHUNK)
        if not chunk:
            break
        raw += len(chunk)
        out = comp.compress(chunk)
        if out:
            digest.update(out)
            upload.write(out)
        if raw >= next_report:
            progress("bytes", {"raw": raw, "stored": upload.size})
            next_report = raw + (16 << 20)
    tail = comp.flush()
    if tail:
        digest.update(tail)
        upload.write(tail)
    progress("bytes", {"raw": raw, "stored": upload.size})
    return raw, digest.hexdigest()


def _export_snapshot(conn: psycopg.Connection[Any], req: BackupRequest) -> tuple[str, Any, str]:
    """Open the read-only repeatable-read transaction whose snapshot pg_dump imports; its
    lock waits are bounded like pg_dump's. (snapshot id, when, txid snapshot)."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    if req.lock_wait_timeout_s:
        conn.execute(
            "SELECT set_config('lock_timeout', %s, true)", (f"{req.lock_wait_timeout_s}s",)
        )
    if req.snapshot_idle_timeout_s:
        conn.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', %s, true)",
            (f"{req.snapshot_idle_timeout_s}s",),
        )
    row = conn.execute(
        "SELECT pg_export_snapshot(), clock_timestamp(), txid_current_snapshot()::text"
    ).fetchone()
    assert row is not None
    return str(row[0]), row[1], str(row[2])


def _dump_args(conn: psycopg.Connection[Any], req: BackupRequest) -> list[str]:
    """pg_dump writes in the session's client encoding, which a role or a database may set to
    one that cannot hold the data: ask for the database's own (pg_dump's default otherwise),
    unless the caller chose one. Lock waits are bounded (req.lock_wait_timeout_s)."""
    extra = list(req.extra_pg_dump_args)
    if req.lock_wait_timeout_s:
        extra.insert(0, f"--lock-wait-timeout={req.lock_wait_timeout_s}s")
    encoding = conn.info.parameter_status("server_encoding")
    if not encoding or any(a == "-E" or a.startswith(("--encoding", "-E")) for a in extra):
        return extra
    return [f"--encoding={encoding}", *extra]


def _dump_failure(req: BackupRequest, dump: PgDump, code: int) -> DumpFailed:
    """pg_dump's failure; when it gave up waiting for a table, who held it."""
    table = waited_for(dump.stderr.decode(errors="replace"))
    if table is None:
        return DumpFailed(f"pg_dump failed (exit {code}): {dump.error_text()}")
    held = "; ".join(h.describe() for h in holders(req.source, table)) or "holder not visible"
    return LockWaitTimeout(
        f"pg_dump waited {req.lock_wait_timeout_s} s for a lock on {table} and gave up, so "
        f"the backup's snapshot would not hold back vacuum: {held}. Retry when that session "
        "is done, or allow a longer wait (--lock-wait-timeout)"
    )


def _read_sequences(conn: psycopg.Connection[Any]) -> list[SequenceState]:
    try:
        return read_sequences(conn)
    except psycopg.Error as exc:
        raise _inventory_failure(exc) from exc


def _finish_sequences(
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


def _cancel(conn: psycopg.Connection[Any]) -> None:
    try:
        conn.cancel()
    except psycopg.Error:
        pass


def _inventory_failure(exc: BaseException) -> BackproofError:
    if isinstance(exc, BackproofError):
        return exc
    return JobFailed(f"taking the inventory of the source failed: {redact(str(exc)).strip()}")
