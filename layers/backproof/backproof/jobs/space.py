"""Scratch space, checked before a verification starts: a restore that runs out of disk half
way proves nothing and wastes the instance's time; refusing up front, with the numbers, tells
the operator what to size.

A verification needs room for the stored archive, the archive decompressed for pg_restore,
and the restored database (on the local disk, or on the temporary RDS instance's storage).
The manifest records the source database's size; older manifests lack it, and then the
restored size is estimated from what pg_dump wrote (data plus indexes rebuilt: about twice).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..instances import Instance
from ..model.checks import FAIL, PASS, CheckResult
from ..model.manifest import Manifest
from ..model.report import VerificationReport

# Room above the estimate: WAL, temporary files of index builds, the server's own files.
HEADROOM = 1.25
GIB = 1 << 30


def restored_size(manifest: Manifest) -> int:
    """Bytes the restored database will take, from the source's size (or an estimate)."""
    recorded = manifest.server.get("database_size")
    if isinstance(recorded, int) and recorded > 0:
        return recorded
    return 2 * manifest.archive.total_raw_size


def _check(subject: str, need: int, have: int, where: str) -> CheckResult:
    ok = have >= need
    detail = f"{have / GIB:.1f} GiB free on {where}, {need / GIB:.1f} GiB needed" + (
        "" if ok else ": give it more space, or verify elsewhere"
    )
    return CheckResult("instance", subject, need, have, PASS if ok else FAIL, detail)


def local_space(manifest: Manifest, directory: Path, *, restore_here: bool) -> CheckResult:
    """The download and decompressed archive (and, for a local cluster, the restored database)
    in `directory`."""
    need = manifest.archive.total_size + manifest.archive.total_raw_size
    if restore_here:
        need += restored_size(manifest)
    need = int(need * HEADROOM)
    have = shutil.disk_usage(directory).free
    return _check("scratch space", need, have, str(directory))


def instance_storage(manifest: Manifest, storage_gb: int) -> CheckResult:
    """The restored database on a temporary RDS instance of `storage_gb`."""
    need = int(restored_size(manifest) * HEADROOM)
    return _check("instance storage", need, storage_gb * GIB, f"a {storage_gb} GB instance")


def room_for(
    manifest: Manifest, instance_kind: str, instance: Instance, report: VerificationReport
) -> bool:
    """Enough scratch space (and instance storage) to verify this backup; the numbers go into
    the report either way, and a shortage makes the run could-not-verify."""
    local = instance_kind == "local"
    results = [local_space(manifest, Path(tempfile.gettempdir()), restore_here=local)]
    storage = getattr(getattr(instance, "settings", None), "storage_gb", None)
    if isinstance(storage, int):
        results.append(instance_storage(manifest, storage))
    report.add(*results)
    failed = [r for r in results if r.failed]
    if failed:
        report.error = "not enough space to verify: " + "; ".join(r.detail for r in failed)
    return not failed
