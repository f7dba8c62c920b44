"""One exception family for the package; exit codes are mapped here and nowhere else.

Every message is written for an operator: what was wrong and what to do about it.
Messages never carry passwords; use `redact()` on anything that may hold a URL.
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_FAILED = 1  # the job ran and failed (or verification found a difference)
EXIT_BAD_INPUT = 2  # bad input or configuration; nothing was written
# `backup --wait-verified`: the backup was taken but its verification could not finish (an
# instance that never came up, a dropped connection): nothing is known about the backup.
EXIT_COULD_NOT_VERIFY = 3
# `backup --wait-verified --through-workflow`: --timeout passed before the verify execution
# ended (it goes on; its ARN is printed).
EXIT_TIMED_OUT = 4
EXIT_INTERRUPTED = 130


class BackproofError(Exception):
    """Base error. `exit_code` says how the CLI ends when this escapes."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self)


class BadInput(BackproofError):
    """The operator asked for something that cannot be done as asked; nothing was changed."""

    exit_code = EXIT_BAD_INPUT


class ConfigurationError(BadInput):
    """Configuration (flags, environment, files) is wrong or incomplete."""


class ToolNotFound(BadInput):
    """No installed PostgreSQL client fits the server."""


class SourceUnavailable(BadInput):
    """The source database cannot be reached or refuses the credentials."""


class StoreUnavailable(BadInput):
    """The object store, bucket or key cannot be used."""


class BackupNotFound(BadInput):
    """No backup with the given id exists in the store."""


class JobFailed(BackproofError):
    """The job started and failed part-way; whatever it wrote was cleaned up."""


class DumpFailed(JobFailed):
    """pg_dump exited non-zero or died mid-stream."""


class LockWaitTimeout(DumpFailed):
    """pg_dump waited its limit for a table another session holds (a migration, say)."""


class UploadFailed(JobFailed):
    """Writing to the object store failed after the job started."""


class IntegrityError(JobFailed):
    """A stored backup does not match its manifest (size, checksum, encryption, format)."""


class SigningFailed(JobFailed):
    """A manifest or a report could not be signed (the key refused or unreachable)."""


class RestoreFailed(JobFailed):
    """pg_restore reported a fatal error."""


class VerificationFailed(JobFailed):
    """The restored database differs from what the manifest recorded."""


class DeletionRefused(BackproofError):
    """The engine will not delete this: it is not something backproof created to throw away."""


class Interrupted(BackproofError):
    """SIGINT or SIGTERM arrived; the job was stopped and cleaned up."""

    exit_code = EXIT_INTERRUPTED


class Terminated(BaseException):
    """SIGTERM, raised in the main thread as SIGINT raises KeyboardInterrupt. Not an Exception,
    so no library's `except Exception` can swallow it and carry on (botocore retried a request
    it interrupted, and the backup ran to the end); the CLI reports it as Interrupted."""


_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@", re.I
)
_KV_PASSWORD = re.compile(r"(?P<key>password\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.I)


def redact(text: str) -> str:
    """Remove passwords from URLs and libpq key=value strings."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _KV_PASSWORD.sub(lambda m: f"{m['key']}***", text)
