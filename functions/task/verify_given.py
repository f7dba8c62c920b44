"""Verify a backup by restoring it into a server the workflow has already created.

    verify_given.py REQUEST_JSON      (target password in PGPASSWORD, URL in BACKPROOF_TARGET_URL)

Same contract as `backproof verify --json`: the report summary on the last stdout line, exit 0
verified, 1 failed, 2 bad input; verification.json written beside the backup. The workflow
owns the instance (it created it and deletes it on every path), so this never tears it down.

Stopgap: the engine's verify creates its own instance; until it accepts a given target
(`--instance url --target-url`), the instance factory is swapped for the duration of the call.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlparse

from backproof import verify
from backproof.checks import OperatorChecks
from backproof.errors import BackproofError, BadInput
from backproof.instances import Instance, RestoreTarget
from backproof.store import BackupStore


class GivenInstance(Instance):
    """A server someone else created and will delete."""

    kind = "rds"

    def __init__(self, target: RestoreTarget, identifier: str | None) -> None:
        self.target = target
        self.identifier = identifier
        self.version = ""

    def provision(self) -> RestoreTarget:
        return self.target

    def teardown(self) -> None:
        """The workflow deletes the instance; nothing to do here."""

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "identifier": self.identifier,
            "managed_by": "workflow",
            "target": self.target.display,
        }


def target_from_url(url: str, password: str | None) -> RestoreTarget:
    parsed = urlparse(url)
    if parsed.scheme not in ("postgresql", "postgres") or not parsed.hostname:
        raise BadInput("BACKPROOF_TARGET_URL must be postgresql://USER@HOST:PORT/DBNAME")
    return RestoreTarget(
        host=parsed.hostname,
        port=parsed.port or 5432,
        user=unquote(parsed.username or "postgres"),
        dbname=unquote(parsed.path.lstrip("/")) or "postgres",
        password=password,
    )


@contextmanager
def given(instance: GivenInstance) -> Iterator[None]:
    original = verify.open_instance
    verify.open_instance = lambda kind, **_options: instance  # type: ignore[assignment]
    try:
        yield
    finally:
        verify.open_instance = original  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    try:
        request = json.loads(argv[0])
        target = target_from_url(os.environ["BACKPROOF_TARGET_URL"], os.environ.get("PGPASSWORD"))
        checks = request.get("checks") or {}
        operator = OperatorChecks.from_cli(
            list(checks.get("assertions") or []),
            [f"{column}={age}" for column, age in (checks.get("freshness") or {}).items()],
            None,
        )
        store = BackupStore.from_url(os.environ["BACKPROOF_STORE"])
        instance = GivenInstance(target, (request.get("target") or {}).get("instance_id"))
        with given(instance):
            report = verify.verify_backup(
                store,
                request["backup_id"],
                database=request["database"],
                options=verify.VerifyOptions(instance="rds", operator_checks=operator),
            )
    except BackproofError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        return exc.exit_code
    except (KeyError, IndexError, ValueError) as exc:
        print(json.dumps({"error": "BadRequest", "message": f"{type(exc).__name__}: {exc}"}))
        return 2
    print(json.dumps(report.summary(), default=str))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
