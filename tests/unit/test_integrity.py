"""The archive's encryption as integrity sees it."""

from __future__ import annotations

from backproof.jobs.integrity import _encryption_check


def test_a_replica_is_accepted_under_its_own_key_but_nothing_else_is() -> None:
    expected = {"type": "aws:kms", "kms_key_id": "arn:aws:kms:eu-west-1:1:key/source"}
    other = {"type": "aws:kms", "kms_key_id": "arn:aws:kms:eu-central-1:1:key/replica"}
    # An object re-encrypted with another key fails, unless S3 marks it a replica
    assert _encryption_check(expected, other).failed
    assert not _encryption_check(expected, {**other, "replica": "true"}).failed
    # and a replica stored unencrypted, or with another kind of encryption, still fails
    assert _encryption_check(expected, {"type": "none", "replica": "true"}).failed
    assert _encryption_check(expected, {"type": "AES256", "replica": "true"}).failed
