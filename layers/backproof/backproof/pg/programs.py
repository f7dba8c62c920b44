"""Find PostgreSQL client and server programs whose major version fits.

Dumping needs a pg_dump at least as new as the server; restoring needs a pg_restore at
least as new as the pg_dump that wrote the archive. Getting this wrong is the most common
bug of pg_dump-to-S3 scripts, so the choice is explicit and reported in the manifest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolNotFound

# Debian/Ubuntu and the official postgres images install each major side by side here.
SYSTEM_BIN_GLOBS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
)
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, order=True)
class PgProgram:
    major: int
    minor: int
    path: Path

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def bin_dir(self) -> Path:
        return self.path.parent


def program_version(path: Path) -> tuple[int, int] | None:
    """Ask a PostgreSQL program for its version; None when it is not one or does not run."""
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(out)
    if not match:
        return None
    return int(match[1]), int(match[2] or 0)


def candidate_dirs(extra: list[Path] | None = None, *, include_path: bool = True) -> list[Path]:
    dirs: list[Path] = list(extra or [])
    env_dir = os.environ.get("BACKPROOF_PG_BIN_DIR")
    if env_dir:
        dirs.append(Path(env_dir))
    # Several majors unpacked side by side (other than the system's), e.g. by CI.
    dirs.extend(Path(d) for d in os.environ.get("BACKPROOF_PG_BIN_DIRS", "").split(os.pathsep) if d)
    for pattern in SYSTEM_BIN_GLOBS:
        dirs.extend(sorted(Path("/").glob(pattern.lstrip("/"))))
    if include_path:
        dirs.extend(Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p)
    seen: set[Path] = set()
    unique = []
    for d in dirs:
        resolved = d.resolve() if d.exists() else d
        if resolved not in seen:
            seen.add(resolved)
            unique.append(d)
    return unique


def installed(program: str, extra_dirs: list[Path] | None = None) -> list[PgProgram]:
    """Every distinct installed version of `program`, newest first."""
    found: dict[Path, PgProgram] = {}
    for directory in candidate_dirs(extra_dirs):
        path = directory / program
        if not path.is_file() or not os.access(path, os.X_OK):
            continue
        real = path.resolve()
        # Debian's /usr/bin/pg_dump is a wrapper that picks a version itself; skip it so the
        # choice stays ours and reportable.
        if real.name == "pg_wrapper":
            continue
        if real in found:
            continue
        version = program_version(path)
        if version:
            found[real] = PgProgram(version[0], version[1], path)
    return sorted(found.values(), reverse=True)


def find_program(
    program: str,
    *,
    min_major: int,
    purpose: str,
    extra_dirs: list[Path] | None = None,
    prefer_major: int | None = None,
) -> PgProgram:
    """The best installed `program` with major >= min_major.

    With `prefer_major`, the installed version closest above it (or equal) wins; otherwise the
    newest. Raises ToolNotFound naming the versions that were found.
    """
    versions = installed(program, extra_dirs)
    fitting = [p for p in versions if p.major >= min_major]
    if not fitting:
        seen = ", ".join(f"{p.version} ({p.path})" for p in versions) or "none"
        raise ToolNotFound(
            f"{purpose} needs {program} {min_major} or newer; found: {seen}. Install the "
            f"PostgreSQL {min_major}+ client (e.g. apt-get install postgresql-client-{min_major}) "
            "or point --pg-bin-dir at its bin directory."
        )
    if prefer_major is not None:
        fitting.sort(key=lambda p: (p.major - prefer_major, -p.minor))
    return fitting[0]


def which(program: str) -> str | None:
    return shutil.which(program)
