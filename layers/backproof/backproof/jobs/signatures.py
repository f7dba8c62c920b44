"""Signed manifests and evidence, in the store.

Writing: with a signer configured, the manifest's signature is stored before the manifest
(`manifest.json.sig`), so the manifest is still written last and never exists unsigned; each
verification report's signature is stored before the report (`verifications/<run>.json.sig`).

Reading: `manifest_signature` is the first integrity check (`integrity.signature`), made
before the archive is read and before anything is created. The statement signed must name
this backup's id, its database and the manifest's own key, and carry the SHA-256 of the
manifest as stored: a manifest changed after signing, or a genuine one copied under another
backup's id, fails. With signing not configured the check is skipped, not failed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import IntegrityError
from ..model.checks import FAIL, PASS, SKIP, CheckResult
from ..model.report import VerificationReport
from ..signing import Envelope, PublicKey, Signing, Statement, sign
from ..store import SIGNATURE_SUFFIX, BackupStore, StoredBackup

SIGNATURE_CHECK = "integrity.signature"
MANIFEST, VERIFICATION = "manifest", "verification"
NOT_CONFIGURED = (
    "signing is not configured (--signing-key, --verify-key or --signing-kms-key-id): the "
    "signature was not checked"
)


def signature_key(key: str) -> str:
    return key + SIGNATURE_SUFFIX


def seal(
    store: BackupStore,
    signing: Signing | None,
    statement: Statement,
    *,
    tier: str | None,
) -> Envelope | None:
    """Store the signature of the object `statement` describes (before the object itself);
    nothing without a signer. SigningFailed if the key refuses."""
    if signing is None or signing.signer is None:
        return None
    envelope = sign(signing.signer, statement)
    store.put_bytes(signature_key(statement.key), envelope.to_json(), tier=tier)
    return envelope


def report_sealer(
    signing: Signing | None, stored: StoredBackup
) -> Callable[[str, bytes], bytes | None] | None:
    """What `write_verification` calls to sign a report exactly as it is written."""
    signer = signing.signer if signing is not None else None
    if signer is None:
        return None

    def sealed(key: str, data: bytes) -> bytes:
        statement = Statement.of(VERIFICATION, stored.backup_id, stored.database, key, data)
        return sign(signer, statement).to_json()

    return sealed


def write_report(
    store: BackupStore,
    stored: StoredBackup,
    report: VerificationReport,
    signing: Signing | None = None,
) -> str:
    """Write a run's evidence beside the backup (never over another run's), signed when a
    signer is configured; its key."""
    sign = report_sealer(signing, stored)
    with store.writes_only_under(stored.run_key("")[: -len(".json")]):  # its verifications/
        report.report_key = store.write_verification(stored, report.to_dict(), sign=sign)
    return report.report_key


def envelope_problem(
    verifier: PublicKey, expected: Statement, raw: bytes | dict[str, Any], *, where: str
) -> tuple[str, Envelope | None]:
    """Why a stored signature does not vouch for `expected` ("" when it does): malformed, not
    made with this key, or made for another object (altered, or copied from elsewhere)."""
    try:
        if isinstance(raw, dict):
            envelope = Envelope.from_dict(raw, where=where)
        else:
            envelope = Envelope.from_json(raw, where=where)
    except IntegrityError as exc:
        return str(exc), None
    problem = verifier.problem(envelope)
    if problem:
        return problem, envelope
    differences = envelope.statement.differences(expected)
    if differences:
        return (
            f"{where} vouches for another object (changed after signing, or copied from "
            f"another backup): {'; '.join(differences)}",
            envelope,
        )
    return "", envelope


def manifest_signature(
    store: BackupStore, stored: StoredBackup, signing: Signing | None
) -> CheckResult:
    """`integrity.signature` of the backup's manifest, read as stored."""
    subject = MANIFEST
    if signing is None or signing.verifier is None:
        return CheckResult(SIGNATURE_CHECK, subject, "signed", "not checked", SKIP, NOT_CONFIGURED)
    verifier = signing.verifier
    try:
        data = store.get_bytes(stored.manifest_key)
    except IntegrityError as exc:
        return CheckResult(SIGNATURE_CHECK, subject, "signed", None, FAIL, str(exc))
    expected = Statement.of(MANIFEST, stored.backup_id, stored.database, stored.manifest_key, data)
    want = {**_brief(expected), "key_id": verifier.key_id}
    try:
        raw = store.get_bytes(signature_key(stored.manifest_key))
    except IntegrityError:
        return CheckResult(
            SIGNATURE_CHECK,
            subject,
            want,
            "unsigned",
            FAIL,
            f"the manifest has no signature ({signature_key(stored.manifest_key)} is missing) "
            "and signing is configured: it cannot be told apart from a forged one",
        )
    problem, envelope = envelope_problem(
        verifier, expected, raw, where=signature_key(stored.manifest_key)
    )
    found: Any = (
        {**_brief(envelope.statement), "key_id": envelope.key_id} if envelope else "malformed"
    )
    return CheckResult(SIGNATURE_CHECK, subject, want, found, FAIL if problem else PASS, problem)


def _brief(statement: Statement) -> dict[str, Any]:
    return {
        "backup_id": statement.backup_id,
        "database": statement.database,
        "key": statement.key,
        "sha256": statement.sha256,
    }
