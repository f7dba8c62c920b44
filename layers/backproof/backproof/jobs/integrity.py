"""Integrity: is the stored backup what its manifest describes? Checked before anything is
restored or created: the manifest's format and version, the roles object's size, SHA-256 and
encryption (jobs/ownership.py), the archive's location, size, encryption and streamed
SHA-256, and (once decompressed) the size pg_dump wrote.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from ..compression import CorruptStream, decompress_file, decompressed_chunks
from ..errors import IntegrityError, JobFailed
from ..model.checks import FAIL, PASS, CheckResult
from ..model.manifest import ArchiveInfo, Manifest
from ..pg.merge import ArchiveFormatError, merge
from ..pg.offsets import add_data_offsets
from ..signing import Signing
from ..store import BackupStore, StoredBackup
from .ownership import roles_integrity
from .signatures import manifest_signature

ProgressFn = Callable[[str], None]
DOWNLOAD_CHUNK = 1 << 20


def _quiet(_message: str) -> None:
    return None


class IntegrityFailure(IntegrityError):
    """The stored backup does not match its manifest; `results` names each failed check."""

    def __init__(self, message: str, results: list[CheckResult], manifest: Manifest | None) -> None:
        super().__init__(message)
        self.results = results
        self.manifest = manifest


def _key_id(value: str | None) -> str:
    """A KMS key ARN and a bare key id name the same key; compare by the id."""
    return (value or "").rsplit("/", 1)[-1]


def _encryption_check(
    expected: dict[str, str], found: dict[str, str], subject: str = "archive"
) -> CheckResult:
    want_type = expected.get("type") or "unknown"
    got_type = found.get("type") or "none"
    if got_type in ("none", "", None):
        return CheckResult(
            "integrity.encryption",
            subject,
            expected,
            found,
            FAIL,
            f"the {subject} is stored unencrypted",
        )
    ok = want_type == got_type
    replica = found.get("replica") == "true"
    if ok and want_type.startswith("aws:kms") and expected.get("kms_key_id") and not replica:
        ok = _key_id(expected.get("kms_key_id")) == _key_id(found.get("kms_key_id"))
    detail = "" if ok else f"the {subject} is not encrypted as the manifest recorded"
    if ok and replica:
        # A replica in another region is encrypted with that region's key; S3 marks it so.
        detail = "a replica, encrypted with the replica bucket's own KMS key"
    return CheckResult(
        "integrity.encryption", subject, expected, found, PASS if ok else FAIL, detail
    )


def integrity_checks(
    store: BackupStore,
    stored: StoredBackup,
    *,
    archive_path: Path | None = None,
    decompress: bool = True,
    progress: ProgressFn = _quiet,
    signing: Signing | None = None,
) -> tuple[Manifest | None, list[CheckResult]]:
    """All integrity checks. With `archive_path`, the archive is also written there: ready for
    pg_restore (decompressed), or as stored when `decompress` is False (then `prepare_archive`
    decompresses it later, e.g. while an instance starts). The manifest's signature comes
    first: a manifest that fails it is not trusted with anything else (jobs/signatures.py)."""
    signature = manifest_signature(store, stored, signing)
    if signature.failed:
        return None, [signature]
    try:
        manifest = store.load_manifest(stored)
    except IntegrityError as exc:
        return None, [
            signature,
            CheckResult(
                "integrity.manifest",
                stored.manifest_key,
                "valid manifest",
                "invalid",
                FAIL,
                str(exc),
            ),
        ]
    results = [
        signature,
        CheckResult(
            "integrity.manifest",
            stored.manifest_key,
            "valid manifest",
            f"format version {manifest.format_version}",
            PASS,
        ),
    ]
    results += roles_integrity(store, stored, manifest)[1]  # roles.json, in manifests that list it
    info = manifest.archive
    objects = _objects(info)
    for subject, key, size, _ in objects:
        results += _stored_object_checks(store, stored, info, subject=subject, key=key, size=size)
    if any(r.failed and (r.check == "integrity.archive_key" or r.found is None) for r in results):
        return manifest, results  # an object outside the backup, or missing: nothing to read
    total = info.total_size / 2**20
    progress(f"reading {total:.1f} MiB of archive and checking its SHA-256")
    if archive_path is None or not decompress:
        # Checked only, or kept as stored (then prepare_archive decompresses it later).
        copies = stored_copies(archive_path, len(objects)) if archive_path else None
        for n, (subject, key, _, sha) in enumerate(objects):
            results.append(_hash_object(store, subject, key, sha, copies[n] if copies else None))
    elif info.compression == "none" and not info.parts:
        results.append(_hash_object(store, "archive", info.key, info.sha256, archive_path))
        if not any(r.failed for r in results):
            add_data_offsets(archive_path)
    else:
        copies = stored_copies(archive_path.with_suffix(".stored"), len(objects))
        for (subject, key, _, sha), copy in zip(objects, copies, strict=True):
            results.append(_hash_object(store, subject, key, sha, copy))
        if not any(r.failed for r in results):
            results += prepare_archive(manifest, copies[0], archive_path)
        for copy in copies:
            copy.unlink(missing_ok=True)
    return manifest, results


def _objects(info: ArchiveInfo) -> list[tuple[str, str, int, str]]:
    """(subject, key, size, sha256) of the main archive and each part."""
    return [("archive", info.key, info.size, info.sha256)] + [
        (f"archive part {n}", p.key, p.size, p.sha256) for n, p in enumerate(info.parts, 1)
    ]


def stored_copies(first: Path, count: int) -> list[Path]:
    """Local paths for the stored copies of the main archive and its parts."""
    return [first] + [first.with_name(f"{first.name}.part-{n:02d}") for n in range(1, count)]


def _stored_object_checks(
    store: BackupStore,
    stored: StoredBackup,
    info: ArchiveInfo,
    *,
    subject: str,
    key: str,
    size: int,
) -> list[CheckResult]:
    """Where an archive object is, its stored size and encryption."""
    if not key.startswith(stored.prefix):
        return [
            CheckResult(
                "integrity.archive_key",
                subject,
                stored.prefix + "…",
                key,
                FAIL,
                "the manifest points outside its backup",
            )
        ]
    try:
        head = store.head(key)
    except IntegrityError as exc:
        return [CheckResult("integrity.size", subject, size, None, FAIL, str(exc))]
    return [
        CheckResult(
            "integrity.size",
            subject,
            size,
            head.size,
            PASS if head.size == size else FAIL,
            "" if head.size == size else "stored size differs",
        ),
        _encryption_check(info.encryption, head.encryption, subject),
    ]


def _hash_object(
    store: BackupStore, subject: str, key: str, sha256: str, copy_to: Path | None
) -> CheckResult:
    """Stream the stored bytes once: SHA-256 and size, optionally copied to a local file."""
    digest = hashlib.sha256()
    size = 0
    out = copy_to.open("wb") if copy_to is not None else None
    try:
        for chunk in store.iter_chunks(key, chunk_size=DOWNLOAD_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if out is not None:
                out.write(chunk)
    except (BotoCoreError, ClientError) as exc:  # the store, not the backup, failed
        raise JobFailed(f"reading {key} from the store failed after {size} bytes: {exc}") from exc
    finally:
        if out is not None:
            out.close()
    sha = digest.hexdigest()
    return CheckResult(
        "integrity.sha256",
        subject,
        sha256,
        sha,
        PASS if sha == sha256 else FAIL,
        ""
        if sha == sha256
        else f"the stored {subject} ({size} bytes read) is not the one the manifest describes",
    )


def prepare_archive(manifest: Manifest, stored_copy: Path, archive_path: Path) -> list[CheckResult]:
    """Decompress a stored copy into the file pg_restore reads (merging a split backup's parts
    into it); the stored copies are removed. A stream that does not decompress, or to another
    size than pg_dump wrote, fails here."""
    info = manifest.archive
    if info.parts:
        return _merge_parts(info, stored_copies(stored_copy, 1 + len(info.parts)), archive_path)
    if info.compression == "none":
        if stored_copy != archive_path:
            stored_copy.replace(archive_path)
        raw = archive_path.stat().st_size
    else:
        try:
            raw = decompress_file(info.compression, stored_copy, archive_path)
        except CorruptStream as exc:
            return [
                CheckResult(
                    "integrity.decompress", "archive", info.compression, "corrupt", FAIL, str(exc)
                )
            ]
        finally:
            stored_copy.unlink(missing_ok=True)
    ok = raw == info.raw_size
    # Where each table's data starts, so parallel pg_restore seeks instead of scanning.
    blocks = add_data_offsets(archive_path) if ok else 0
    return [
        CheckResult(
            "integrity.raw_size",
            "archive",
            info.raw_size,
            raw,
            PASS if ok else FAIL,
            f"data positions recorded for {blocks} blocks" if blocks else "",
        )
    ]


class _Counted:
    """A decompressed stream that counts its bytes."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.size = chunks, 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.size += len(chunk)
            yield chunk


def _merge_parts(info: ArchiveInfo, copies: list[Path], archive_path: Path) -> list[CheckResult]:
    """The main archive and its parts, decompressed once, merged into one (pg/merge.py)."""
    streams = [_Counted(decompressed_chunks(info.compression, copy)) for copy in copies]
    try:
        blocks = merge(streams[0], list(streams[1:]), archive_path)
    except (CorruptStream, ArchiveFormatError) as exc:
        return [
            CheckResult(
                "integrity.decompress",
                "archive",
                f"{1 + len(info.parts)} mergeable archives",
                "corrupt",
                FAIL,
                str(exc),
            )
        ]
    finally:
        for copy in copies:
            copy.unlink(missing_ok=True)
    results = []
    for (subject, _, _, _), raw_size, stream in zip(
        _objects(info), [info.raw_size, *(p.raw_size for p in info.parts)], streams, strict=True
    ):
        ok = stream.size == raw_size
        results.append(
            CheckResult("integrity.raw_size", subject, raw_size, stream.size, PASS if ok else FAIL)
        )
    if not any(r.failed for r in results):
        results[0].detail = f"{len(copies)} archives merged, data positions recorded for {blocks}"
    return results


def check_integrity(
    store: BackupStore,
    stored: StoredBackup,
    *,
    archive_path: Path | None = None,
    progress: ProgressFn = _quiet,
    consequence: str = "",
    signing: Signing | None = None,
) -> tuple[Manifest, list[CheckResult]]:
    """Signature, manifest, size, streamed SHA-256 and encryption; IntegrityFailure on any
    mismatch, its message followed by `consequence` (what was therefore left alone)."""
    manifest, results = integrity_checks(
        store, stored, archive_path=archive_path, progress=progress, signing=signing
    )
    failed = [r for r in results if r.failed]
    if failed or manifest is None:
        names = ", ".join(f"{r.check} (expected {r.expected}, found {r.found})" for r in failed)
        then = f", {consequence}" if consequence else ""
        raise IntegrityFailure(
            f"backup {stored.backup_id} failed integrity checks{then}: {names}", results, manifest
        )
    return manifest, results


class Preparation(threading.Thread):
    """Decompresses the verified stored copy while the instance starts (both take seconds)."""

    def __init__(self, manifest: Manifest, stored_copy: Path, archive: Path) -> None:
        super().__init__(name="prepare-archive", daemon=True)
        self.args_ = (manifest, stored_copy, archive)
        self.result: list[CheckResult] | None = None
        self.error: BaseException | None = None
        self.seconds = 0.0

    def run(self) -> None:
        started = time.monotonic()
        try:
            self.result = prepare_archive(*self.args_)
        except BaseException as exc:  # reported by the caller
            self.error = exc
        self.seconds = round(time.monotonic() - started, 3)

    def outcome(self) -> list[CheckResult]:
        self.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result
