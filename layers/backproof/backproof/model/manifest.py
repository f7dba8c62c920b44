"""The manifest: what a backup holds, recorded in the same snapshot as the dump.

Written last, beside the archive; without it an upload is not a backup. A verification
compares a restored database with it, table by table.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import IntegrityError
from .privileges import PrivilegeInventory
from .sequences import SequenceState

FORMAT = "backproof.manifest"
# 2: roles, owners and privileges, sequence bounds (fields absent from version 1 read as empty).
FORMAT_VERSION = 2
# 3: the archive is split into parts dumped in parallel (archive.parts). Written only for
# split backups, so a release that cannot merge parts refuses them instead of restoring the
# main archive alone and calling the missing rows a defect.
SPLIT_FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
TIERS = ("daily", "weekly", "monthly", "yearly", "manual", "safety")
COMPRESSIONS = ("zstd", "gzip", "none")
_BACKUP_ID = re.compile(r"^(\d{8}T\d{6})\.(\d{3})Z-([0-9a-f]{6})$")


def new_backup_id(now: datetime | None = None) -> str:
    """Sortable, unique id: UTC time of the start (to the millisecond) plus random hex."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def is_backup_id(text: str) -> bool:
    return bool(_BACKUP_ID.match(text))


def backup_id_time(backup_id: str) -> datetime:
    match = _BACKUP_ID.match(backup_id)
    if not match:
        raise ValueError(f"not a backup id: {backup_id!r}")
    base = datetime.strptime(match[1], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return base.replace(microsecond=int(match[2]) * 1000)


@dataclass
class TableStats:
    """One table's contents in the snapshot."""

    schema: str
    name: str
    kind: str  # "table" or "materialized_view"
    rows: int
    fingerprint: str
    columns: list[str] = field(default_factory=list)
    # How rows were hashed (fingerprint algorithm version 2): "binary", or "" for their text.
    method: str = ""

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass
class Inventory:
    """Everything the manifest records about the database's contents and schema."""

    tables: list[TableStats] = field(default_factory=list)
    objects: dict[str, int] = field(default_factory=dict)
    sequences: list[SequenceState] = field(default_factory=list)
    extensions: dict[str, str] = field(default_factory=dict)
    large_objects: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    algorithm: str = ""
    # Owners and grants (format 2); None in older manifests: nothing to compare.
    privileges: PrivilegeInventory | None = None
    # "schema.index" of indexes invalid in the source (a partitioned index missing some
    # partition's index stays invalid through any restore); None in older manifests.
    invalid_indexes: list[str] | None = None

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def table(self, schema: str, name: str) -> TableStats | None:
        for t in self.tables:
            if t.schema == schema and t.name == name:
                return t
        return None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["privileges"] = self.privileges.to_dict() if self.privileges else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Inventory:
        return cls(
            tables=[TableStats(**t) for t in data.get("tables", [])],
            objects={k: int(v) for k, v in data.get("objects", {}).items()},
            sequences=[SequenceState.from_dict(s) for s in data.get("sequences", [])],
            extensions=dict(data.get("extensions", {})),
            large_objects=dict(data.get("large_objects", {})),
            settings=dict(data.get("settings", {})),
            algorithm=str(data.get("algorithm", "")),
            privileges=(
                PrivilegeInventory.from_dict(data["privileges"]) if data.get("privileges") else None
            ),
            invalid_indexes=(
                None if data.get("invalid_indexes") is None else list(data["invalid_indexes"])
            ),
        )


@dataclass
class ArchivePart:
    """A data-only archive dumped by another worker from the same snapshot (format 3)."""

    key: str
    size: int  # bytes stored
    sha256: str  # of the bytes stored
    raw_size: int  # bytes pg_dump produced
    tables: list[list[str]] = field(default_factory=list)  # [schema, name] whose data it holds


@dataclass
class ArchiveInfo:
    """The main archive (the whole backup, unless `parts` hold some tables' data)."""

    key: str
    format: str  # pg_dump format: "custom"
    compression: str  # outer stream compression: zstd | gzip | none (parts alike)
    size: int  # bytes stored
    sha256: str  # of the bytes stored
    raw_size: int  # bytes pg_dump produced
    encryption: dict[str, str] = field(default_factory=dict)  # {"type": "aws:kms", "kms_key_id": …}
    parts: list[ArchivePart] = field(default_factory=list)

    @property
    def total_size(self) -> int:
        """Bytes stored, parts included."""
        return self.size + sum(p.size for p in self.parts)

    @property
    def total_raw_size(self) -> int:
        """Bytes pg_dump produced, parts included: the merged archive's size, about."""
        return self.raw_size + sum(p.raw_size for p in self.parts)

    @property
    def keys(self) -> list[str]:
        return [self.key, *(p.key for p in self.parts)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchiveInfo:
        fields = {k: v for k, v in data.items() if k != "parts"}
        return cls(**fields, parts=[ArchivePart(**p) for p in data.get("parts") or []])


@dataclass
class StoredObject:
    """An object stored beside the archive (the roles), vouched for like the archive."""

    key: str
    size: int
    sha256: str


@dataclass
class Manifest:
    backup_id: str
    database: str  # the logical name the backup is filed under
    source_database: str  # the database name on the server
    tier: str
    created_at: str
    snapshot: dict[str, Any]  # {"id", "taken_at", "txid"}
    server: dict[str, Any]  # {"version", "major", "version_num"}
    tools: dict[str, Any]  # {"pg_dump": {"version", "path"}}
    archive: ArchiveInfo
    inventory: Inventory
    timings: dict[str, float] = field(default_factory=dict)
    dump_options: dict[str, Any] = field(default_factory=dict)
    roles: StoredObject | None = None  # roles.json (format 2); None in older manifests
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def server_major(self) -> int:
        return int(self.server["major"])

    @property
    def snapshot_time(self) -> datetime:
        return datetime.fromisoformat(self.snapshot["taken_at"])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inventory"] = self.inventory.to_dict()
        # Put the identity first so a person reading the JSON sees it at once.
        head = {
            k: data.pop(k) for k in ("format", "format_version", "backup_id", "database", "tier")
        }
        return {**head, **data}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False).encode()

    @classmethod
    def from_json(cls, raw: bytes | str, *, where: str = "manifest") -> Manifest:
        """Parse and validate; anything malformed raises IntegrityError naming the problem."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"{where} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise IntegrityError(f"{where} is not a JSON object")
        if data.get("format") != FORMAT:
            raise IntegrityError(f"{where} has format {data.get('format')!r}, expected {FORMAT!r}")
        if data.get("format_version") not in READABLE_VERSIONS:
            raise IntegrityError(
                f"{where} has format version {data.get('format_version')!r}; this backproof "
                f"reads versions {', '.join(map(str, READABLE_VERSIONS))}. Use a backproof "
                "release that matches."
            )
        try:
            archive = ArchiveInfo.from_dict(data["archive"])
            manifest = cls(
                backup_id=str(data["backup_id"]),
                database=str(data["database"]),
                source_database=str(data["source_database"]),
                tier=str(data["tier"]),
                created_at=str(data["created_at"]),
                snapshot=dict(data["snapshot"]),
                server=dict(data["server"]),
                tools=dict(data["tools"]),
                archive=archive,
                inventory=Inventory.from_dict(data["inventory"]),
                timings=dict(data.get("timings", {})),
                dump_options=dict(data.get("dump_options", {})),
                roles=StoredObject(**data["roles"]) if data.get("roles") else None,
                format_version=int(data["format_version"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{where} is missing or has a malformed field: {exc}") from exc
        if not is_backup_id(manifest.backup_id):
            raise IntegrityError(f"{where} has a malformed backup id {manifest.backup_id!r}")
        objects: list[ArchiveInfo | ArchivePart] = [archive, *archive.parts]
        for stored in objects:
            if not isinstance(stored.size, int) or not re.fullmatch(r"[0-9a-f]{64}", stored.sha256):
                raise IntegrityError(f"{where} has a malformed archive size or sha256")
        if archive.parts and manifest.format_version < SPLIT_FORMAT_VERSION:
            raise IntegrityError(f"{where} lists archive parts in a format that has none")
        roles = manifest.roles
        if roles is not None and not (
            isinstance(roles.size, int) and re.fullmatch(r"[0-9a-f]{64}", str(roles.sha256))
        ):
            raise IntegrityError(f"{where} has a malformed roles size or sha256")
        if archive.compression not in COMPRESSIONS:
            raise IntegrityError(f"{where} names unknown compression {archive.compression!r}")
        return manifest
