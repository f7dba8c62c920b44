"""The second region: does the replica bucket hold an exact copy of a backup, and how far
behind the source is it?

Every object of the backup (manifest and its signature, archive, roles.json, each verification
report and its signature) must be present at the replica, under the same key relative to the
store's prefix, with the same size and SHA-256. The archive's and the roles' hashes are the
manifest's; the other objects' are streamed from the source. Hashes are streamed in chunks, so
memory stays bounded whatever the archive's size. Nothing is restored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import IntegrityError
from ..model.checks import FAIL, PASS, CheckResult, compare
from ..model.manifest import Manifest
from ..store import SIGNATURE_SUFFIX, BackupStore, StoredBackup

PRESENT, SIZE, SHA256 = "replica.present", "replica.size", "replica.sha256"
CHUNK = 8 << 20


def _sha256(store: BackupStore, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in store.iter_chunks(key, chunk_size=CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def backup_keys(stored: StoredBackup, manifest: Manifest | None = None) -> list[str]:
    """Every key a backup may hold (signatures and roles only exist for some backups; the
    parts of a split archive are named by its manifest)."""
    keys = [stored.manifest_key, stored.manifest_key + SIGNATURE_SUFFIX, stored.roles_key]
    if stored.archive_key:
        keys.append(stored.archive_key)
    manifest = manifest or stored.manifest
    if manifest is not None:
        keys += [p.key for p in manifest.archive.parts]
    for key in stored.verification_keys:
        keys += [key, key + SIGNATURE_SUFFIX]
    return keys


def check_replica(
    source: BackupStore, replica: BackupStore, stored: StoredBackup
) -> list[CheckResult]:
    """One result per check and object; the subject is the key relative to the store."""
    manifest = source.load_manifest(stored)
    known = {manifest.archive.key: manifest.archive.sha256}
    known.update({p.key: p.sha256 for p in manifest.archive.parts})
    if manifest.roles is not None:
        known[manifest.roles.key] = manifest.roles.sha256
    results: list[CheckResult] = []
    for key in backup_keys(stored, manifest):
        try:
            expected = source.head(key)
        except IntegrityError:
            continue  # this backup has no such object (no signature, a format-1 manifest)
        relative = key[len(source.prefix) :]
        copy = replica.prefix + relative
        try:
            found = replica.head(copy)
        except IntegrityError:
            results.append(
                CheckResult(
                    PRESENT, relative, True, False, FAIL, f"{replica.location(copy)} is missing"
                )
            )
            continue
        results.append(CheckResult(PRESENT, relative, True, True, PASS))
        results.append(compare(SIZE, relative, expected.size, found.size))
        if expected.size != found.size:
            continue  # the copy differs; hashing it proves nothing more
        want = known.get(key) or known.get(relative) or _sha256(source, key)
        got = _sha256(replica, copy)
        detail = "" if want == got else f"{replica.location(copy)} differs from the source"
        results.append(compare(SHA256, relative, want, got, detail))
    return results


@dataclass(frozen=True)
class ReplicationLag:
    """A database's newest backup at the source and at the replica."""

    database: str
    source_newest: str | None
    source_newest_at: datetime | None
    replica_newest: str | None
    replica_newest_at: datetime | None
    missing: int  # source backups the replica does not hold (by id)

    @property
    def lag_seconds(self) -> float | None:
        """0 when the replica holds the newest backup; None when it holds none at all."""
        if self.source_newest is None or self.source_newest == self.replica_newest:
            return 0.0
        if self.source_newest_at is None or self.replica_newest_at is None:
            return None
        return max((self.source_newest_at - self.replica_newest_at).total_seconds(), 0.0)

    def to_dict(self) -> dict[str, Any]:
        def when(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {
            "database": self.database,
            "source_newest": self.source_newest,
            "source_newest_at": when(self.source_newest_at),
            "replica_newest": self.replica_newest,
            "replica_newest_at": when(self.replica_newest_at),
            "lag_seconds": self.lag_seconds,
            "missing": self.missing,
        }


def replication_lag(
    source: BackupStore, replica: BackupStore, *, database: str | None = None
) -> list[ReplicationLag]:
    """Per database at the source: how far the replica's newest complete backup is behind."""
    mine = source.list_backups(database, load=False)
    theirs = replica.list_backups(database, load=False)
    lags = []
    for name in sorted({b.database for b in mine} | ({database} if database else set())):
        here = [b for b in mine if b.database == name]
        there = [b for b in theirs if b.database == name]
        held = {b.backup_id for b in there}
        lags.append(
            ReplicationLag(
                name,
                here[-1].backup_id if here else None,
                here[-1].created_at if here else None,
                there[-1].backup_id if there else None,
                there[-1].created_at if there else None,
                sum(1 for b in here if b.backup_id not in held),
            )
        )
    return lags
