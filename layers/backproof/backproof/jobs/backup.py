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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from .. import __version__
from ..errors import BackproofError, BadInput, DumpFailed, LockWaitTimeout
from ..model.manifest import (
    COMPRESSIONS,
    FORMAT_VERSION,
    SPLIT_FORMAT_VERSION,
    TIERS,
    Inventory,
    Manifest,
    new_backup_id,
)
from ..model.sequences import SequenceState
from ..pg.dump import PgDump
from ..pg.locks import holders, waited_for
from ..pg.programs import PgProgram, find_program
from ..pg.roles import read_roles
from ..pg.target import Target
from ..signals import signals_deferred
from ..signing import Signing, Statement
from ..store import BACKUPS, BackupStore, validate_database_name
from ..store.layout import part_key
from .dump_workers import (
    SPLIT_MIN_BYTES,
    SPLIT_MIN_TABLE_BYTES,
    DumpExit,
    Stream,
    Streams,
    archive_info,
    plan_shares,
    share_args,
)
from .ownership import store_roles
from .signatures import MANIFEST, seal
from .snapshot import (
    Helpers,
    InventoryThread,
    export_snapshot,
    finish_sequences,
    inventory_failure,
    read_sequences_now,
)

ProgressFn = Callable[[str, dict[str, Any]], None]
# Ten minutes: long enough for a quick DDL, short enough not to hold vacuum back for hours.
DEFAULT_LOCK_WAIT_S = 600
# Each worker is a pg_dump and a connection to the source (and one more for fingerprints).
MAX_JOBS = 32


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
    # pg_dump workers sharing the dump (jobs/dump_workers.py); 1: one archive. The thresholds
    # below which a database keeps one archive are fields so tests can split small ones.
    jobs: int = 1
    split_min_bytes: int = SPLIT_MIN_BYTES
    split_min_table_bytes: int = SPLIT_MIN_TABLE_BYTES


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
            "size": m.archive.total_size,
            "parts": len(m.archive.parts),
            "sha256": m.archive.sha256,
            "tables": len(m.inventory.tables),
            "rows": m.inventory.total_rows,
            "seconds": round(m.timings.get("total_seconds", 0.0), 3),
        }


def validate_request(req: BackupRequest) -> None:
    validate_database_name(req.database_name)
    if req.tier not in TIERS:
        raise BadInput(f"unknown tier {req.tier!r}: use one of {', '.join(TIERS)}")
    if not 1 <= req.jobs <= MAX_JOBS:
        raise BadInput(f"--jobs {req.jobs}: use a number of workers from 1 to {MAX_JOBS}")
    if req.compression not in COMPRESSIONS:
        raise BadInput(
            f"unknown compression {req.compression!r}: use one of {', '.join(COMPRESSIONS)}"
        )


def _noop(event: str, data: dict[str, Any]) -> None:
    return None


def run_backup(req: BackupRequest, progress: ProgressFn = _noop) -> BackupResult:
    """Take one backup. Raises a BackproofError subclass; on any failure nothing is listed."""
    validate_request(req)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    backup_id = new_backup_id(started)
    directory = req.store.backup_prefix(req.database_name, backup_id, req.namespace)
    conn = req.source.connect(autocommit=False)
    try:
        # Everything this backup writes (or removes on failure) lies in its own directory.
        with req.store.writes_only_under(directory):
            return _backup_in_snapshot(req, conn, started, t0, progress, backup_id=backup_id)
    finally:
        conn.close()


def _backup_in_snapshot(
    req: BackupRequest,
    conn: psycopg.Connection[Any],
    started: datetime,
    t0: float,
    progress: ProgressFn,
    *,
    backup_id: str,
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

    snapshot_id, taken_at, txid = export_snapshot(
        conn, req.lock_wait_timeout_s, req.snapshot_idle_timeout_s
    )
    # What a restore will need room for (jobs/space.py), read inside the snapshot.
    size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    server["database_size"] = int(size[0]) if size else 0
    key = req.store.archive_key(req.database_name, backup_id, req.compression, req.namespace)
    directory = req.store.backup_prefix(req.database_name, backup_id, req.namespace)
    # Sequences are not transactional: read them now, before pg_dump reads them, so what the
    # manifest records is a bound pg_dump's values satisfy (model/sequences.py).
    sequences = read_sequences_now(conn)
    progress("snapshot", {"snapshot": snapshot_id, "backup_id": backup_id})
    roles = read_roles(conn)  # the cluster's roles as of the snapshot (no passwords)

    try:
        dumped = _dump(
            req,
            conn,
            pg_dump=pg_dump,
            snapshot_id=snapshot_id,
            key=key,
            sequences=sequences,
            progress=progress,
        )
    except BaseException:
        _remove(req.store, directory)  # the parts some workers completed before one failed
        raise
    dump_seconds = time.monotonic() - t0
    try:
        dumped.inventory.sequences = finish_sequences(conn, sequences)  # ends the snapshot

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
            archive=archive_info(dumped.written, req.compression),
            inventory=dumped.inventory,
            dump_options={
                "extra_args": req.extra_pg_dump_args,
                "fingerprints": req.fingerprints,
                "jobs": req.jobs,
                "workers": len(dumped.written),
                **({"single_archive": dumped.single} if dumped.single else {}),
            },
            roles=store_roles(req.store, directory, roles, tier=req.tier),
        )
        split = len(dumped.written) > 1
        manifest.format_version = SPLIT_FORMAT_VERSION if split else FORMAT_VERSION
        manifest.timings = {
            "dump_seconds": round(dump_seconds, 3),
            "inventory_seconds": round(dumped.inventory_seconds, 3),
            "total_seconds": round(time.monotonic() - t0, 3),
        }
        manifest_key = directory + "manifest.json"
        _write_manifest(req, manifest_key, manifest)
        progress("done", {"backup_id": backup_id, "size": manifest.archive.total_size})
        return BackupResult(manifest, manifest_key)
    except BaseException:
        # The archive is complete but no manifest vouches for it yet: remove it, so a failure
        # or a signal at this point leaves nothing behind either.
        _remove(req.store, directory)
        raise


def _remove(store: BackupStore, directory: str) -> None:
    """Remove what a failed backup wrote. If even that fails (no delete permission, the store
    unreachable), the directory has no manifest, so it is not a backup; retention removes it
    after a day. The failure that got us here is the one to report."""
    with signals_deferred(), contextlib.suppress(BackproofError):
        store.delete_prefix(directory)


@dataclass
class _Dumped:
    written: list[Stream]  # the main archive first, then its parts
    single: str  # why the dump is one archive, when it is
    inventory: Inventory
    inventory_seconds: float


def _dump(
    req: BackupRequest,
    conn: psycopg.Connection[Any],
    *,
    pg_dump: PgProgram,
    snapshot_id: str,
    key: str,
    sequences: list[SequenceState],
    progress: ProgressFn,
) -> _Dumped:
    """The dump workers streaming to the store while the inventory is taken; on any failure
    (or signal) every pg_dump is killed and every upload aborted."""
    try:
        shares, single = plan_shares(
            conn,
            req.jobs,
            req.extra_pg_dump_args,
            pg_dump.major,
            min_bytes=req.split_min_bytes,
            min_table_bytes=req.split_min_table_bytes,
        )
    except psycopg.Error as exc:
        raise inventory_failure(exc) from exc
    streams = Streams(progress, req.compression)
    inventory = InventoryThread(
        conn,
        req.fingerprints,
        progress,
        sequences,
        Helpers(
            req.source,
            snapshot_id,
            req.jobs - 1,
            req.lock_wait_timeout_s,
            req.snapshot_idle_timeout_s,
        ),
    )
    try:
        common = _dump_args(conn, req)
        for share in shares:
            where = key if share.main else part_key(key, share.index)
            dump = PgDump(pg_dump, req.source, snapshot_id, [*common, *share_args(share)])
            streams.add(share, dump, req.store.open_upload(where, tier=req.tier), where)
        streams.start()
        inventory.start()
        try:
            written = streams.wait()
        except DumpExit as exc:
            raise _dump_failure(req, exc.stream.dump, exc.code) from None
        inventory.join()
        if inventory.error is not None:
            raise inventory_failure(inventory.error)
    except BaseException:
        with signals_deferred():
            streams.kill()
            if inventory.is_alive():
                inventory.cancel()
                inventory.join(timeout=30)
        raise
    assert inventory.result is not None
    return _Dumped(written, single, inventory.result, inventory.seconds)


def _write_manifest(req: BackupRequest, key: str, manifest: Manifest) -> None:
    """The manifest, last; its signature (with a signer) just before it, so a manifest never
    exists unsigned when signing is configured."""
    data = manifest.to_json()
    statement = Statement.of(MANIFEST, manifest.backup_id, manifest.database, key, data)
    seal(req.store, req.signing, statement, tier=req.tier)
    req.store.put_bytes(key, data, tier=req.tier)


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
