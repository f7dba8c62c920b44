"""Evidence an auditor can check offline: one JSON bundle per backup.

The bundle holds the manifest and every verification run's report exactly as stored (their
text), the signature of each, the roles' digest as the manifest records it, the public key
(PEM) and a summary of what the runs proved, by kind of check. `check_bundle` needs nothing
else: no store, no AWS, no private key. It fails when any signature does not verify with the
bundled key, when any object is not the one its signature names (its key, backup id,
database, size, SHA-256), when a report belongs to another backup, or when the summary is
not what the signed reports say. Reports that were written unsigned are carried apart and
said to vouch for nothing; they never count in the summary. What the bundle says about
itself (when and from which store it was built) is informational and not signed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import BadInput, ConfigurationError, IntegrityError
from ..model.evidence import FORMAT, FORMAT_VERSION, content, content_bytes, summarize
from ..model.manifest import Manifest
from ..model.report import verdict_of
from ..signing import PublicKey, Signing, Statement, sha256_hex
from ..store import SIGNATURE_SUFFIX, BackupStore, StoredBackup
from ..store.layout import MANIFEST_NAME, NAMESPACES, VERIFICATIONS_DIR, backup_prefix
from .signatures import MANIFEST, VERIFICATION, envelope_problem

OK, FAILED, NOTE = "ok", "FAIL", "note"


def _signature(store: BackupStore, key: str) -> Any:
    """The stored signature object as JSON (or its raw text if it is not JSON); None if
    there is none."""
    try:
        raw = store.get_bytes(key + SIGNATURE_SUFFIX)
    except IntegrityError:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", errors="replace")


def build_bundle(
    store: BackupStore,
    backup_id: str,
    *,
    database: str | None = None,
    signing: Signing | None = None,
    rto_target_seconds: float | None = None,
) -> dict[str, Any]:
    """Everything an auditor needs about one backup, read from the store as it is."""
    if signing is None or signing.verifier is None:
        raise BadInput(
            "an evidence bundle carries the public key its signatures verify with: give "
            "--verify-key, --signing-key or --signing-kms-key-id"
        )
    stored = store.find(backup_id, database)
    manifest_bytes = store.get_bytes(stored.manifest_key)
    try:
        manifest: Manifest | None = Manifest.from_json(manifest_bytes, where=stored.manifest_key)
    except IntegrityError:
        manifest = None  # the check says why
    reports, unsigned = [], []
    for key in _report_keys(stored):
        data = store.get_bytes(key)
        entry = {"key": key, **content(data)}
        signature = _signature(store, key)
        if signature is None:
            unsigned.append(entry)
        else:
            reports.append({**entry, "signature": signature})
    verifier = signing.verifier
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "store": store.url,
        "backup_id": stored.backup_id,
        "database": stored.database,
        "public_key": {
            "key_id": verifier.key_id,
            "fingerprint": verifier.fingerprint,
            "pem": verifier.pem(),
        },
        "manifest": {
            "key": stored.manifest_key,
            **content(manifest_bytes),
            "signature": _signature(store, stored.manifest_key),
        },
        "roles": _roles(store, manifest),
        "reports": reports,
        "unsigned_reports": unsigned,
        "summary": summarize(_parsed(reports), rto_target_seconds),
    }


def _report_keys(stored: StoredBackup) -> list[str]:
    """Every run's report, oldest first (a legacy single report before all)."""
    return sorted(stored.verification_keys, key=lambda k: (k != stored.verification_key, k))


def _roles(store: BackupStore, manifest: Manifest | None) -> dict[str, Any] | None:
    """roles.json's digest as the (signed) manifest records it, and as found when built."""
    if manifest is None or manifest.roles is None:
        return None
    info = manifest.roles
    try:
        found: str | None = sha256_hex(store.get_bytes(info.key))
    except IntegrityError:
        found = None
    return {"key": info.key, "size": info.size, "sha256": info.sha256, "stored_sha256": found}


def _parsed(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for entry in reports:
        try:
            report = json.loads(content_bytes(entry))
        except (ValueError, UnicodeDecodeError, IntegrityError):
            continue
        if isinstance(report, dict):
            out.append(report)
    return out


@dataclass
class Finding:
    status: str  # ok | FAIL | note
    what: str


@dataclass
class BundleCheck:
    """What checking a bundle found, one line per thing checked."""

    findings: list[Finding] = field(default_factory=list)
    backup_id: str | None = None
    database: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.findings) and all(f.status != FAILED for f in self.findings)

    def add(self, ok: bool, what: str) -> bool:
        self.findings.append(Finding(OK if ok else FAILED, what))
        return ok

    def lines(self) -> list[str]:
        return [f"{f.status:<4}  {f.what}" for f in self.findings]


def check_bundle(raw: bytes) -> BundleCheck:
    """Check a bundle with nothing but itself (see the module's docstring)."""
    result = BundleCheck()
    try:
        bundle = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        result.add(False, f"the bundle is not JSON: {exc}")
        return result
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        result.add(False, f"not a {FORMAT} bundle")
        return result
    if bundle.get("format_version") != FORMAT_VERSION:
        result.add(False, f"bundle format version {bundle.get('format_version')!r} is unknown")
        return result
    try:
        _check(bundle, result)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        result.add(False, f"the bundle is missing or garbles a field: {exc!r}")
    return result


def _check(bundle: dict[str, Any], result: BundleCheck) -> None:
    result.backup_id, result.database = str(bundle["backup_id"]), str(bundle["database"])
    key = _public_key(bundle["public_key"], result)
    if key is None:
        return
    manifest = _check_manifest(bundle, key, result)
    if manifest is None:
        return
    _check_roles(bundle.get("roles"), manifest, result)
    directory = str(bundle["manifest"]["key"]).removesuffix(MANIFEST_NAME)
    signed = []
    keys = [str(e.get("key")) for e in bundle["reports"] + bundle["unsigned_reports"]]
    result.add(len(keys) == len(set(keys)), f"{len(keys)} reports, each key once")
    for entry in bundle["reports"]:
        report = _check_report(entry, key, manifest, directory, result)
        if report is not None:
            signed.append(report)
    for entry in bundle["unsigned_reports"]:
        result.findings.append(
            Finding(
                NOTE,
                f"report {entry.get('key')} was written unsigned: it vouches for "
                "nothing and is not counted in the summary",
            )
        )
    target = bundle["summary"]["recovery_time"]["target_seconds"]
    same = summarize(signed, target) == bundle["summary"]
    result.add(
        same,
        f"the summary is what the {len(signed)} signed reports say"
        if same
        else "the summary differs from what the signed reports say",
    )


def _public_key(info: dict[str, Any], result: BundleCheck) -> PublicKey | None:
    try:
        key = PublicKey.from_pem(str(info["pem"]).encode(), key_id=str(info["key_id"]))
    except ConfigurationError as exc:
        result.add(False, f"public key: {exc}")
        return None
    ok = key.fingerprint == info.get("fingerprint")
    result.add(
        ok,
        f"public key {key.key_id} (fingerprint {key.fingerprint}) loads"
        + ("" if ok else f", but the bundle names fingerprint {info.get('fingerprint')}"),
    )
    return key if ok else None


def _check_object(
    entry: dict[str, Any],
    kind: str,
    key: PublicKey,
    bundle_ids: tuple[str, str],
    result: BundleCheck,
    *,
    label: str,
) -> bytes | None:
    """Hash and signature of one object; its bytes when both hold."""
    data = content_bytes(entry)
    where = f"{label} {entry['key']}"
    sha = sha256_hex(data)
    if not result.add(
        sha == entry.get("sha256") and len(data) == entry.get("size"),
        f"{where}: sha256 {sha}, {len(data)} bytes"
        + ("" if sha == entry.get("sha256") else f" (the bundle says {entry.get('sha256')})"),
    ):
        return None
    if entry.get("signature") is None:
        result.add(False, f"{where}: unsigned")
        return None
    expected = Statement.of(kind, *bundle_ids, str(entry["key"]), data)
    problem, _ = envelope_problem(key, expected, _raw(entry["signature"]), where=where)
    result.add(
        not problem,
        problem
        or f"{where}: signature verifies with {key.key_id} and "
        f"names this object, backup {bundle_ids[0]} of {bundle_ids[1]}",
    )
    return None if problem else data


def _raw(signature: Any) -> bytes | dict[str, Any]:
    return signature if isinstance(signature, dict) else str(signature).encode()


def _check_manifest(bundle: dict[str, Any], key: PublicKey, result: BundleCheck) -> Manifest | None:
    ids = (str(bundle["backup_id"]), str(bundle["database"]))
    entry = bundle["manifest"]
    path = str(entry["key"])
    at = [backup_prefix("", ids[1], ids[0], n) + MANIFEST_NAME for n in NAMESPACES]
    if not result.add(
        any(path.endswith(a) for a in at),
        f"manifest key {path} is where backup {ids[0]} of {ids[1]} keeps it",
    ):
        return None
    data = _check_object(entry, MANIFEST, key, ids, result, label="manifest")
    if data is None:
        return None
    try:
        manifest = Manifest.from_json(data, where="the manifest")
    except IntegrityError as exc:
        result.add(False, str(exc))
        return None
    same = (manifest.backup_id, manifest.database) == ids
    result.add(
        same,
        f"the manifest describes backup {manifest.backup_id} of "
        f"{manifest.database}" + ("" if same else f", not {ids[0]} of {ids[1]}"),
    )
    return manifest if same else None


def _check_roles(roles: Any, manifest: Manifest, result: BundleCheck) -> None:
    want = manifest.roles
    if want is None:
        result.add(
            roles is None,
            "the manifest records no roles"
            + ("" if roles is None else ", but the bundle lists some"),
        )
        return
    recorded = isinstance(roles, dict) and (
        roles.get("key"),
        roles.get("size"),
        roles.get("sha256"),
    ) == (want.key, want.size, want.sha256)
    result.add(
        recorded,
        f"roles {want.key}: {want.size} bytes, sha256 {want.sha256}, as the "
        "signed manifest records" + ("" if recorded else " (the bundle says otherwise)"),
    )
    stored = roles.get("stored_sha256") if isinstance(roles, dict) else None
    result.add(
        stored == want.sha256,
        "the stored roles.json matched the manifest when the bundle was built"
        if stored == want.sha256
        else f"the stored roles.json did not match the manifest (found {stored})",
    )


def _check_report(
    entry: dict[str, Any],
    key: PublicKey,
    manifest: Manifest,
    directory: str,
    result: BundleCheck,
) -> dict[str, Any] | None:
    ids = (manifest.backup_id, manifest.database)
    path = str(entry["key"])
    if not result.add(
        path.startswith(f"{directory}{VERIFICATIONS_DIR}/"),
        f"report {path} is stored beside the manifest",
    ):
        return None
    data = _check_object(entry, VERIFICATION, key, ids, result, label="report")
    if data is None:
        return None
    try:
        report = json.loads(data)
    except ValueError as exc:
        result.add(False, f"report {path} is not JSON: {exc}")
        return None
    same = isinstance(report, dict) and (report.get("backup_id"), report.get("database")) == ids
    result.add(
        same,
        f"report {path} is of backup {ids[0]} of {ids[1]}, verdict "
        f"{verdict_of(report) if isinstance(report, dict) else '?'}",
    )
    return report if same else None
