"""Passwords never survive into a message: URLs and libpq key=value strings."""

from __future__ import annotations

import pytest

from backproof.errors import BackproofError, redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("could not connect postgresql://app:hunter2@db:5432/x", "hunter2"),
        ("dsn host=db password=hunter2 user=app", "hunter2"),
        ("dsn host=db password='hun ter2' user=app", "hun ter2"),
        ("s3 postgres://u:p%40ss@h/d failed", "p%40ss"),
    ],
)
def test_redact_removes_passwords(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert secret not in str(BackproofError(text))
