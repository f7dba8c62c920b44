"""Where things live in a store, and what one backup directory holds.

Layout under the store's prefix:
    backups/<database>/<yyyy>/<mm>/<dd>/<backup-id>/{archive.dump[.zst|.gz], roles.json,
                                                     manifest.json[.sig],
                                                     verifications/<run-id>.json[.sig]}
A directory without manifest.json is not a backup (an upload that died, or one in progress).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from ..contract import TIER_TAG
from ..errors import BadInput
from ..model.manifest import Manifest, backup_id_time, is_backup_id
from ..model.report import VERIFIED, verdict_of

# A database's own backups, and the safety backups taken of restore targets before a restore.
BACKUPS, SAFETY = "backups", "safety"
NAMESPACES = (BACKUPS, SAFETY)
MANIFEST_NAME = "manifest.json"
ROLES_NAME = "roles.json"  # the cluster's roles (no passwords), vouched for by the manifest
# Written by releases that kept one report per backup (overwritten at each run); still read.
VERIFICATION_NAME = "verification.json"
# One evidence object per verification run, never overwritten.
VERIFICATIONS_DIR = "verifications"
ARCHIVE_NAMES = {"zstd": "archive.dump.zst", "gzip": "archive.dump.gz", "none": "archive.dump"}
# A signed object's signature lives beside it: manifest.json.sig, verifications/<run>.json.sig.
SIGNATURE_SUFFIX = ".sig"
_DATABASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def part_key(archive_key: str, index: int) -> str:
    """Where part `index` of a split backup lives, beside its main archive:
    archive.dump.zst -> archive.part-01.dump.zst."""
    directory, name = archive_key.rsplit("/", 1)
    return f"{directory}/{name.replace('archive.', f'archive.part-{index:02d}.', 1)}"


def tagging(tier: str | None) -> dict[str, str]:
    """Object tag naming the backup's tier; the bucket's lifecycle rules move tiers by it."""
    return {"Tagging": urlencode({TIER_TAG: tier})} if tier else {}


def validate_database_name(name: str) -> str:
    if not _DATABASE_NAME.match(name or ""):
        raise BadInput(
            f"database name {name!r} cannot be used in object keys: use letters, digits, '.', "
            "'_' or '-' (at most 128, starting with a letter or digit)"
        )
    return name


def backups_root(prefix: str, database: str | None = None, namespace: str = BACKUPS) -> str:
    return f"{prefix}{namespace}/" + (f"{validate_database_name(database)}/" if database else "")


def backup_prefix(prefix: str, database: str, backup_id: str, namespace: str = BACKUPS) -> str:
    when = backup_id_time(backup_id)
    return f"{prefix}{namespace}/{database}/{when:%Y/%m/%d}/{backup_id}/"


def safety_name(host: str, port: int, dbname: str) -> str:
    """The safety namespace's name for a restore target: its instance and database, so two
    targets sharing a database name (staging and production) never share safety backups."""
    raw = f"{host}-{port}-{dbname}"
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-.") or "target"
    return validate_database_name(cleaned[:128])


def locate(prefix: str, key: str) -> tuple[str, str, str] | None:
    """(database, backup id, directory prefix) of a key inside the layout (either namespace),
    else None. Keys one level deeper (`verifications/<run>.json`) belong to the backup above."""
    namespace = key[len(prefix) :].split("/", 1)[0]
    if namespace not in NAMESPACES:
        return None
    rest = key[len(prefix) + len(namespace) + 1 :].split("/")
    if len(rest) == 7 and rest[5] == VERIFICATIONS_DIR:
        rest = [*rest[:5], "/".join(rest[5:])]
    if len(rest) != 6 or not is_backup_id(rest[4]):
        return None
    directory = key[: -len(rest[5])] if rest[5] else key
    return rest[0], rest[4], directory


@dataclass
class StoredBackup:
    """One backup directory in the store. `complete` means its manifest exists."""

    backup_id: str
    database: str
    prefix: str  # ends with '/'
    complete: bool
    archive_key: str | None = None
    archive_size: int = 0
    has_verification: bool = False
    last_modified: datetime | None = None
    in_progress_uploads: int = 0
    manifest: Manifest | None = None
    # The latest conclusive report (verified or failed): the backup's status. A run that could
    # not verify never changes it.
    verification: dict[str, Any] | None = None
    # Keys of every verification run's evidence, oldest first (plus a legacy report).
    verification_keys: list[str] = field(default_factory=list)
    # Every run's report, oldest first (loaded with the backup).
    verifications: list[dict[str, Any]] = field(default_factory=list)
    namespace: str = BACKUPS

    @property
    def manifest_key(self) -> str:
        return self.prefix + MANIFEST_NAME

    @property
    def roles_key(self) -> str:
        return self.prefix + ROLES_NAME

    @property
    def verification_key(self) -> str:
        """Where releases before the verification history kept their one report."""
        return self.prefix + VERIFICATION_NAME

    def run_key(self, run_id: str) -> str:
        return f"{self.prefix}{VERIFICATIONS_DIR}/{run_id}.json"

    @property
    def ever_verified(self) -> bool:
        """Some run proved this backup restorable (what retention protects)."""
        return any(verdict_of(r) == VERIFIED for r in self.verifications)

    @property
    def last_run(self) -> dict[str, Any] | None:
        """The newest run of any outcome, could-not-verify included."""
        return self.verifications[-1] if self.verifications else None

    @property
    def created_at(self) -> datetime:
        return backup_id_time(self.backup_id)
