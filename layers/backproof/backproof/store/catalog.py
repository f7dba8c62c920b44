"""The catalog of a store: which backups exist (a directory with a manifest is a backup),
finding one by id or `latest`, reading its manifest and its verification history, writing a
verification run's evidence. Independent of the object store; `S3BackupStore` provides the
object operations it needs.

Two namespaces share the layout: `backups/<database>/…` (a database's own backups) and
`safety/<target>/…` (what a restore target held before an operator restore replaced it).
Safety backups are never `latest` for any database and never count for freshness.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import BackupNotFound, BadInput, IntegrityError
from ..model.manifest import Manifest, is_backup_id
from ..model.report import latest_conclusive, new_run_id
from .layout import (
    ARCHIVE_NAMES,
    BACKUPS,
    MANIFEST_NAME,
    SIGNATURE_SUFFIX,
    VERIFICATION_NAME,
    VERIFICATIONS_DIR,
    StoredBackup,
    backups_root,
    locate,
)


class Catalog(ABC):
    """Backups and their evidence, over any store that can list, read and write objects."""

    prefix: str

    @property
    @abstractmethod
    def url(self) -> str: ...

    @abstractmethod
    def _iter_objects(self, prefix: str) -> Iterator[dict[str, Any]]: ...

    @abstractmethod
    def _in_progress_uploads(self, prefix: str) -> Iterator[dict[str, Any]]: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def put_bytes(
        self, key: str, data: bytes, content_type: str = ..., *, tier: str | None = None
    ) -> None: ...

    def list_backups(
        self,
        database: str | None = None,
        *,
        include_incomplete: bool = False,
        load: bool = True,
        namespace: str = BACKUPS,
    ) -> list[StoredBackup]:
        """Backups, oldest first. Directories without a manifest only with include_incomplete.

        With `load`, each complete backup's manifest and verification report are read too.
        """
        root = backups_root(self.prefix, database, namespace)
        found: dict[str, StoredBackup] = {}
        for obj in self._iter_objects(root):
            self._file_object(found, obj)
        if include_incomplete:
            for upload in self._in_progress_uploads(root):
                entry = self._entry_for(found, upload["Key"])
                if entry:
                    entry.in_progress_uploads += 1
        backups = sorted(found.values(), key=lambda b: (b.backup_id, b.database))
        if not include_incomplete:
            backups = [b for b in backups if b.complete]
        if load:
            for b in backups:
                self._load(b)
        return backups

    def _entry_for(self, found: dict[str, StoredBackup], key: str) -> StoredBackup | None:
        """The backup directory a key belongs to, or None for keys outside the layout."""
        located = locate(self.prefix, key)
        if located is None:
            return None
        database, backup_id, prefix = located
        namespace = prefix[len(self.prefix) :].split("/", 1)[0]
        return found.setdefault(
            prefix, StoredBackup(backup_id, database, prefix, complete=False, namespace=namespace)
        )

    def _file_object(self, found: dict[str, StoredBackup], obj: dict[str, Any]) -> None:
        entry = self._entry_for(found, obj["Key"])
        if entry is None:
            return
        name = obj["Key"].rsplit("/", 1)[-1]
        if name.endswith(SIGNATURE_SUFFIX):
            pass  # a signature belongs to the object beside it; never a report of its own
        elif name == MANIFEST_NAME:
            entry.complete = True
        elif name == VERIFICATION_NAME or obj["Key"].startswith(
            f"{entry.prefix}{VERIFICATIONS_DIR}/"
        ):
            entry.has_verification = True
            entry.verification_keys.append(obj["Key"])
        elif name in ARCHIVE_NAMES.values():
            entry.archive_key = obj["Key"]
            entry.archive_size = int(obj["Size"])
        entry.last_modified = max(filter(None, [entry.last_modified, obj["LastModified"]]))

    def _load(self, b: StoredBackup) -> None:
        if b.complete:
            try:
                b.manifest = self.load_manifest(b)
            except IntegrityError:
                b.manifest = None
        if b.has_verification:
            b.verifications = self.load_verifications(b)
            b.verification = latest_conclusive(b.verifications)

    def find(
        self, backup_id: str, database: str | None = None, *, namespace: str = BACKUPS
    ) -> StoredBackup:
        """The backup with this id, or the newest complete one for `latest` (a database's own
        backups only, unless `namespace` says safety)."""
        if backup_id != "latest" and not is_backup_id(backup_id):
            raise BadInput(
                f"{backup_id!r} is not a backup id (they look like 20261121T050312.123Z-1a2b3c); "
                "run `backproof list` to see them"
            )
        backups = self.list_backups(database, load=False, namespace=namespace)
        if backup_id == "latest":
            if not backups:
                where = f" for database {database!r}" if database else ""
                raise BackupNotFound(f"no complete backup{where} in {self.url}")
            return backups[-1]
        matches = [b for b in backups if b.backup_id == backup_id]
        if not matches:
            raise BackupNotFound(
                f"no backup {backup_id} in {self.url}; run `backproof list --store {self.url}`"
            )
        if len(matches) > 1:
            raise BadInput(
                f"backup id {backup_id} exists for several databases; pass --database-name"
            )
        return matches[0]

    def load_manifest(self, stored: StoredBackup) -> Manifest:
        manifest = Manifest.from_json(
            self.get_bytes(stored.manifest_key), where=stored.manifest_key
        )
        if manifest.backup_id != stored.backup_id or manifest.database != stored.database:
            raise IntegrityError(
                f"{stored.manifest_key} describes backup {manifest.backup_id} of "
                f"{manifest.database}, not the directory it is in"
            )
        return manifest

    def load_verifications(self, stored: StoredBackup) -> list[dict[str, Any]]:
        """Every verification run's report, oldest first (a legacy single report first of
        all). Unreadable objects are left out: they prove nothing."""
        keys = stored.verification_keys or [
            o["Key"]
            for o in self._iter_objects(stored.prefix)
            if o["Key"] == stored.verification_key
            or (
                o["Key"].startswith(f"{stored.prefix}{VERIFICATIONS_DIR}/")
                and not o["Key"].endswith(SIGNATURE_SUFFIX)
            )
        ]
        reports = []
        for key in sorted(keys, key=lambda k: (k != stored.verification_key, k)):
            try:
                data = json.loads(self.get_bytes(key))
            except (IntegrityError, ValueError):
                continue
            if isinstance(data, dict):
                reports.append(data)
        return reports

    def load_verification(self, stored: StoredBackup) -> dict[str, Any] | None:
        """The backup's status: its latest conclusive report (could-not-verify never counts)."""
        return latest_conclusive(self.load_verifications(stored))

    def write_verification(
        self,
        stored: StoredBackup,
        report: dict[str, Any],
        *,
        sign: Callable[[str, bytes], bytes | None] | None = None,
    ) -> str:
        """Each run's evidence is its own object, never overwritten. `sign(key, data)` returns
        the signature of exactly what is written, stored first beside it (`<key>.sig`)."""
        tier = stored.manifest.tier if stored.manifest else report.get("tier")
        tier = tier if isinstance(tier, str) else None
        run_id = str(report.get("run_id") or new_run_id())
        key = stored.run_key(run_id)
        data = json.dumps(report, indent=2, default=str).encode()
        signature = sign(key, data) if sign is not None else None
        if signature is not None:
            self.put_bytes(key + SIGNATURE_SUFFIX, signature, tier=tier)
        self.put_bytes(key, data, tier=tier)
        return key
