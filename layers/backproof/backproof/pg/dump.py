"""pg_dump as a child process writing a custom-format archive to a pipe."""

from __future__ import annotations

import fcntl
import subprocess
import threading
from typing import IO

from ..errors import redact
from .programs import PgProgram
from .target import Target

READ_CHUNK = 1 << 20


class PgDump:
    """pg_dump as a child process. The argument list is built here, readable without running it;
    it never holds a password (that travels in the environment)."""

    def __init__(self, program: PgProgram, source: Target, snapshot: str, extra: list[str]) -> None:
        self.argv = [
            str(program.path),
            "--format=custom",
            "--compress=0",
            f"--snapshot={snapshot}",
            "--no-password",
            *extra,
            f"--dbname={source.conninfo()}",
        ]
        self.env = source.child_env()
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = b""
        self._stderr_thread: threading.Thread | None = None

    def start(self) -> subprocess.Popen[bytes]:
        # Own session: a Ctrl-C at the terminal reaches us, and we decide how pg_dump ends.
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            start_new_session=True,
        )
        _widen_pipe(self.proc.stdout)
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        return self.proc

    def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def wait(self) -> int:
        assert self.proc is not None
        code = self.proc.wait()
        if self._stderr_thread:
            self._stderr_thread.join()
        return code

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def error_text(self) -> str:
        text = self.stderr.decode(errors="replace").strip()
        return redact(text.splitlines()[-1] if text else "no message")

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout


def _widen_pipe(stream: IO[bytes] | None) -> None:
    """A 1 MiB pipe (Linux) lets each read take a megabyte instead of 64 KiB."""
    if stream is None:
        return
    try:
        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), READ_CHUNK)
    except (OSError, AttributeError):
        pass  # the default pipe still works, only with more reads
