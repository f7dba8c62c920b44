"""pg_restore as a child process, and what came of it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..model.report import RestoreMessage
from .messages import HARMLESS_RULES, HarmlessRule, classify_pg_restore_output
from .programs import PgProgram
from .target import Target
from .toc import schemas_first


class PgRestore:
    """pg_restore as a child process; the argument list is built here, readable without running
    it, and never holds a password (PGPASSWORD travels in the environment)."""

    def __init__(
        self,
        program: PgProgram,
        archive: Path,
        target: Target,
        *,
        jobs: int = 1,
        list_file: Path | None = None,
        clean: bool = False,
        keep_owners: bool = False,
        single_transaction: bool = False,
        rules: tuple[HarmlessRule, ...] = HARMLESS_RULES,
    ) -> None:
        self.program = program
        self.target = target
        self.rules = rules
        argv = [str(program.path), "--no-password", f"--dbname={target.conninfo()}"]
        if jobs > 1 and not single_transaction:
            argv.append(f"--jobs={jobs}")
        if not keep_owners:
            # A throwaway server has none of the source's roles; contents do not depend on them.
            argv += ["--no-owner", "--no-privileges"]
        if clean:
            argv += ["--clean", "--if-exists"]
        if single_transaction:
            argv.append("--single-transaction")
        if list_file is not None:
            argv.append(f"--use-list={list_file}")
        argv.append(str(archive))
        self.argv = argv

    def run(self, *, on_line: Callable[[str], None] | None = None) -> RestoreOutcome:
        """Run to completion. On any exception (SIGTERM, Ctrl-C) the whole process group,
        parallel workers included, is killed before the exception goes on."""
        started = time.monotonic()
        proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.target.child_env(),
            start_new_session=True,
            text=True,
            errors="replace",
        )
        lines: list[str] = []
        reader = threading.Thread(target=_drain, args=(proc, lines, on_line), daemon=True)
        reader.start()
        try:
            code = proc.wait()
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            reader.join(timeout=10)
        output = "".join(lines)
        return RestoreOutcome(
            seconds=round(time.monotonic() - started, 3),
            exit_code=code,
            messages=classify_pg_restore_output(output, self.rules),
            program=self.program,
        )


def restore_archive(
    program: PgProgram, archive: Path, target: Target, *, jobs: int, owners: bool = False
) -> RestoreOutcome:
    """A full restore into an empty database. With `owners`, owners and grants are kept: the
    schemas and their grants first (one job), then the rest (`jobs` in parallel), so a role
    that is not a superuser can give each object its owner (see toc.schemas_first); the
    --use-list files are written beside the archive. One outcome for both runs."""
    if not owners:
        return PgRestore(program, archive, target, jobs=jobs).run()
    first, rest = schemas_first(program, archive, archive.parent)
    one = PgRestore(program, archive, target, list_file=first, keep_owners=True).run()
    two = PgRestore(program, archive, target, jobs=jobs, list_file=rest, keep_owners=True).run()
    return RestoreOutcome(
        seconds=round(one.seconds + two.seconds, 3),
        exit_code=max(one.exit_code, two.exit_code),
        messages=one.messages + two.messages,
        program=program,
    )


def _drain(
    proc: subprocess.Popen[str], lines: list[str], on_line: Callable[[str], None] | None
) -> None:
    for line in proc.stderr or ():
        lines.append(line)
        if on_line:
            on_line(line.rstrip("\n"))


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


@dataclass
class RestoreOutcome:
    seconds: float
    exit_code: int
    messages: list[RestoreMessage] = field(default_factory=list)
    program: PgProgram | None = None

    @property
    def fatal(self) -> list[RestoreMessage]:
        return [m for m in self.messages if m.fatal]

    @property
    def harmless(self) -> list[RestoreMessage]:
        return [m for m in self.messages if not m.fatal and m.severity != "info"]

    @property
    def ok(self) -> bool:
        # pg_restore exits 1 when it ignored errors; all of them must then be harmless, and at
        # least one must have been printed (an exit without a message is not trusted).
        if self.exit_code == 0:
            return not self.fatal
        return not self.fatal and bool(self.harmless)
