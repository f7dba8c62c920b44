#!/usr/bin/env python3
"""Build PostgreSQL 15's regression database once and keep it as a custom-format dump.

The regression database (what ``make installcheck`` leaves behind: some 600 tables, ~100 MB,
nearly every kind of catalog object) is a realistic, awkward input for backup/restore tests.
This script makes ``<cache>/regression/regression.dump`` (``pg_dump -Fc``, PostgreSQL 15)
where ``<cache>`` is ``$BACKPROOF_CACHE``, else ``<repo root>/.cache``. If the dump exists it
only prints its path. Otherwise it:

1. adds ``deb-src`` entries for the Debian mirrors the machine's apt sources already name
   (in ``/etc/apt/sources.list.d/backproof-deb-src.sources``; the existing files are not
   touched) and runs ``apt-get update``;
2. installs what the build needs and is missing (build-essential, dpkg-dev, perl, and
   postgresql-15 if ``/usr/lib/postgresql/15/bin`` is absent);
3. ``apt-get source postgresql-15`` (the installed version when the mirror still has it)
   into ``<cache>/regression/src/``, ``./configure --without-icu --without-readline
   --without-zlib --without-llvm`` and ``make -C src/test/regress`` (pg_regress plus the
   test modules regress.so, refint.so, autoinc.so);
4. starts a throwaway cluster with Debian's PostgreSQL 15 as ``postgres`` (free port, Unix
   socket in a temporary directory), runs ``pg_regress --schedule=parallel_schedule``
   against it in installcheck mode (pg_regress creates the ``regression`` database; test
   failures are recorded, not fatal);
5. writes ``regression.dump``, ``roles.sql`` (``pg_dumpall --roles-only
   --no-role-passwords``) and ``info.json`` (tables, size, server version, pg_regress
   summary, roles, the shared libraries functions point at, timings), then stops and
   deletes the cluster.

The regression database has C functions whose ``probin`` is an absolute path into the
build tree (``.../src/test/regress/regress.so`` etc.), so the tree stays in the cache:
restoring the dump into a fresh PostgreSQL 15 needs those files at those paths
(``info.json`` lists them under ``probin_absolute``). Moving the cache breaks them; delete
``<cache>/regression`` (or pass ``--force``) to rebuild.

``--verify-restore`` then restores the dump into a fresh PostgreSQL 15 cluster (after
replaying roles.sql) as the superuser and as a non-superuser with CREATEDB/CREATEROLE
that owns the target database (like RDS's master user), each with and without
``--no-owner --no-privileges``, and records pg_restore's distinct errors in
``restore_check.json``.

Usage:
    python3 tests/support/regression_db.py [--force] [--verify-restore] [--quiet]

Prints the dump's path on stdout; progress on stderr. Needs root for the apt steps (not
when everything is already installed). Standard library only.
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
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PG15_BIN = Path("/usr/lib/postgresql/15/bin")
SOURCE_PACKAGE = "postgresql-15"
BUILD_PACKAGES = ("build-essential", "dpkg-dev", "perl")
CONFIGURE_FLAGS = ("--without-icu", "--without-readline", "--without-zlib", "--without-llvm")
TEST_MODULES = ("regress.so", "refint.so", "autoinc.so")
DEB_SRC_FILE = Path("/etc/apt/sources.list.d/backproof-deb-src.sources")
CLUSTER_USER = "postgres"
RESTORE_ROLE = "regress_rds_master"

Log = Callable[[str], None]


class ProvisionError(RuntimeError):
    """A step failed; the message says which and what to do."""


def _stderr(msg: str) -> None:
    print(f"regression_db: {msg}", file=sys.stderr, flush=True)


def _silent(msg: str) -> None:
    pass


def cache_dir() -> Path:
    env = os.environ.get("BACKPROOF_CACHE")
    return Path(env).resolve() if env else REPO_ROOT / ".cache"


def regression_dir() -> Path:
    return cache_dir() / "regression"


def dump_path() -> Path:
    return regression_dir() / "regression.dump"


def info_path() -> Path:
    return regression_dir() / "info.json"


def roles_path() -> Path:
    return regression_dir() / "roles.sql"


def _logfile() -> Path:
    return regression_dir() / "provision.log"


# ----------------------------------------------------------------------------- helpers


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", DEBIAN_FRONTEND="noninteractive", **extra)
    return env


def _run(
    cmd: Sequence[str | os.PathLike[str]],
    what: str,
    *,
    cwd: Path | str = "/",
    timeout: float = 1800,
    check: bool = True,
    log_output: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``cmd``; its output goes to provision.log. On failure raise with the output's tail."""
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [str(c) for c in cmd],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=_env(),
            timeout=timeout,
            check=False,
            errors="replace",
        )
    except FileNotFoundError as exc:
        raise ProvisionError(f"{what}: {exc.filename} not found") from None
    except subprocess.TimeoutExpired:
        raise ProvisionError(
            f"{what}: timed out after {timeout:.0f}s: {' '.join(map(str, cmd))}"
        ) from None
    if log_output:
        with _logfile().open("a") as fh:
            fh.write(
                f"\n### {what} ({time.monotonic() - started:.1f}s, exit {proc.returncode})\n"
                f"$ {' '.join(map(str, cmd))}\n{proc.stdout}{proc.stderr}"
            )
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise ProvisionError(
            f"{what} failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"{tail}\n(full output in {_logfile()})"
        )
    return proc


def _is_root() -> bool:
    return os.geteuid() == 0


def _need_root(what: str) -> None:
    if not _is_root():
        raise ProvisionError(f"{what} needs root (apt); run this script as root, or do it by hand")


def _as_cluster_user() -> list[str]:
    if not _is_root():
        return []
    try:
        pwd.getpwnam(CLUSTER_USER)
    except KeyError:
        raise ProvisionError(
            f"running as root but there is no {CLUSTER_USER!r} user to run "
            "clusters as (apt-get install postgresql-common creates it)"
        ) from None
    return ["runuser", "-u", CLUSTER_USER, "--"]


def _world_readable_dir(path: Path) -> None:
    """The cluster user must reach the dump and the test modules the dump points at."""
    path.chmod(0o755)  # deliberately world-readable


def _give_to_cluster_user(path: Path) -> None:
    if _is_root():
        pw = pwd.getpwnam(CLUSTER_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Timer:
    def __init__(self, log: Log) -> None:
        self.log = log
        self.steps: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        self.log(f"{name} ...")
        yield
        self.steps[name] = round(time.monotonic() - started, 1)
        self.log(f"{name}: done in {self.steps[name]}s")


# --------------------------------------------------------------------------- apt sources


@dataclass
class AptEntry:
    types: list[str]
    uris: list[str]
    suites: list[str]
    components: list[str]
    signed_by: list[str] = field(default_factory=list)  # deb822 value lines, verbatim
    origin: str = ""


def _source_files() -> list[Path]:
    files = [Path("/etc/apt/sources.list")] if Path("/etc/apt/sources.list").is_file() else []
    d = Path("/etc/apt/sources.list.d")
    files += sorted(p for p in d.glob("*") if p.suffix in (".list", ".sources") and p.is_file())
    return files


def _parse_one_line(path: Path) -> list[AptEntry]:
    entries = []
    for raw in path.read_text(errors="replace").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
        if not m:
            continue
        kind, opts, uri, suite, comps = m.groups()
        signed = re.search(r"signed-by=(\S+)", opts or "")
        entries.append(
            AptEntry(
                [kind],
                [uri],
                [suite],
                comps.split(),
                [signed.group(1)] if signed else [],
                str(path),
            )
        )
    return entries


def _words(fields: dict[str, list[str]], key: str) -> list[str]:
    return " ".join(fields.get(key, [])).split()


def _parse_deb822(path: Path) -> list[AptEntry]:
    entries = []
    for block in re.split(r"\n\s*\n", path.read_text(errors="replace")):
        fields: dict[str, list[str]] = {}
        key = None
        for line in block.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key].append(line)
                continue
            if ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = [value.strip()] if value.strip() else []
        if not fields.get("types") or fields.get("enabled", ["yes"])[0].lower() == "no":
            continue
        entries.append(
            AptEntry(
                _words(fields, "types"),
                _words(fields, "uris"),
                _words(fields, "suites"),
                _words(fields, "components"),
                fields.get("signed-by", []),
                str(path),
            )
        )
    return entries


def apt_entries() -> list[AptEntry]:
    entries: list[AptEntry] = []
    for path in _source_files():
        entries += _parse_deb822(path) if path.suffix == ".sources" else _parse_one_line(path)
    return entries


def ensure_deb_src(log: Log) -> bool:
    """Add deb-src entries mirroring the enabled Debian deb entries; True if a file changed."""
    entries = apt_entries()
    debian = [e for e in entries if "deb" in e.types and any("debian" in u for u in e.uris)]
    if not debian:
        raise ProvisionError(
            "no enabled Debian 'deb' entry in /etc/apt/sources.list or "
            "/etc/apt/sources.list.d/*.{list,sources}; cannot derive deb-src"
        )
    have = {
        (u.rstrip("/"), s)
        for e in entries
        if "deb-src" in e.types
        for u in e.uris
        for s in e.suites
    }
    stanzas = []
    for e in debian:
        for uri in e.uris:
            suites = [s for s in e.suites if (uri.rstrip("/"), s) not in have]
            if not suites:
                continue
            lines = [
                "Types: deb-src",
                f"URIs: {uri}",
                f"Suites: {' '.join(suites)}",
                f"Components: {' '.join(e.components)}",
            ]
            if e.signed_by:
                first, *rest = e.signed_by
                lines.append(f"Signed-By: {first}".rstrip())
                lines += rest
            stanzas.append(f"# from {e.origin}\n" + "\n".join(lines))
            have.update((uri.rstrip("/"), s) for s in suites)
    if not stanzas:
        log("deb-src entries already present")
        return False
    _need_root(f"adding deb-src entries ({DEB_SRC_FILE})")
    old = DEB_SRC_FILE.read_text() if DEB_SRC_FILE.exists() else ""
    text = (
        (
            old.rstrip() + "\n\n"
            if old.strip()
            else "# Written by backproof's tests/support/regression_db.py (apt-get source "
            "postgresql-15).\n\n"
        )
        + "\n\n".join(stanzas)
        + "\n"
    )
    DEB_SRC_FILE.write_text(text)
    log(f"wrote {len(stanzas)} deb-src stanza(s) to {DEB_SRC_FILE}")
    return True


def _source_versions() -> list[str]:
    proc = subprocess.run(
        ["apt-cache", "showsrc", "--only-source", SOURCE_PACKAGE],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    return re.findall(r"^Version: (\S+)$", proc.stdout, flags=re.M)


def _dpkg_version(package: str) -> str | None:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}|${Version}", package],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    status, _, version = proc.stdout.partition("|")
    return version if proc.returncode == 0 and status.endswith(" installed") else None


def _newest(versions: list[str]) -> str:
    best = versions[0]
    for v in versions[1:]:
        if (
            subprocess.run(["dpkg", "--compare-versions", v, "gt", best], check=False).returncode
            == 0
        ):
            best = v
    return best


def ensure_packages(log: Log, updated: bool) -> bool:
    """Install missing build packages; returns whether apt-get update ran."""
    missing = [p for p in BUILD_PACKAGES if _dpkg_version(p) is None]
    if not (PG15_BIN / "postgres").exists():
        missing += ["postgresql-15", "postgresql-client-15"]
    if not missing:
        log("build packages present")
        return updated
    _need_root(f"installing {' '.join(missing)}")
    if not updated:
        _run(["apt-get", "update", "-q"], "apt-get update")
        updated = True
    log(f"installing {' '.join(missing)}")
    _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], "apt-get install")
    return updated


# --------------------------------------------------------------------- source and build


def _tree_version(tree: Path) -> str | None:
    try:
        first = (tree / "debian" / "changelog").read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return None
    m = re.match(rf"^{re.escape(SOURCE_PACKAGE)} \(([^)]+)\)", first)
    return m.group(1) if m else None


def ensure_source(log: Log, updated: bool) -> Path:
    """The unpacked Debian source tree of postgresql-15 in <cache>/regression/src/."""
    src_root = regression_dir() / "src"
    src_root.mkdir(parents=True, exist_ok=True)
    _world_readable_dir(src_root)
    installed = _dpkg_version(SOURCE_PACKAGE)
    trees = [p for p in sorted(src_root.glob(f"{SOURCE_PACKAGE}-*")) if p.is_dir()]
    for tree in trees:  # reuse a tree of the installed version (or any complete tree)
        if _tree_version(tree) and (installed is None or _tree_version(tree) == installed):
            log(f"source tree {tree} ({_tree_version(tree)}) already there")
            return tree
    versions = _source_versions()
    if not versions and not updated:
        _need_root("apt-get update")
        _run(["apt-get", "update", "-q"], "apt-get update")
        versions = _source_versions()
    if not versions:
        raise ProvisionError(
            f"apt knows no source package {SOURCE_PACKAGE} even with deb-src "
            f"entries ({DEB_SRC_FILE}); is this Debian 12 (bookworm)?"
        )
    version = installed if installed in versions else _newest(versions)
    if installed and version != installed:
        log(
            f"installed {SOURCE_PACKAGE} is {installed}, mirror only has source {versions}; "
            f"using {version} (C modules only need the same major)"
        )
    for tree in trees:
        shutil.rmtree(tree)
    download = src_root / ".download"
    shutil.rmtree(download, ignore_errors=True)
    download.mkdir()
    log(f"apt-get source {SOURCE_PACKAGE}={version}")
    _run(
        ["apt-get", "source", "-q", "--only-source", f"{SOURCE_PACKAGE}={version}"],
        "apt-get source",
        cwd=download,
    )
    unpacked = [p for p in download.glob(f"{SOURCE_PACKAGE}-*") if p.is_dir()]
    if len(unpacked) != 1:
        raise ProvisionError(f"apt-get source left {len(unpacked)} trees in {download}")
    tree = src_root / unpacked[0].name
    unpacked[0].rename(tree)
    shutil.rmtree(download)
    return tree


def ensure_built(tree: Path, log: Log, timer: Timer) -> Path:
    """pg_regress and the test modules, built in ``tree``; returns src/test/regress."""
    regress = tree / "src" / "test" / "regress"
    wanted = [regress / "pg_regress", *(regress / m for m in TEST_MODULES)]
    if all(p.is_file() for p in wanted):
        log(f"pg_regress and {', '.join(TEST_MODULES)} already built in {regress}")
        return regress
    if not (tree / "config.status").exists():
        with timer.step("configure"):
            _run(["./configure", *CONFIGURE_FLAGS], "configure", cwd=tree)
    with timer.step("make -C src/test/regress"):
        # The generated headers (utils/errcodes.h and friends) first: a parallel make of the
        # regress directory alone races them and fails on a fresh tree.
        _run(["make", "-C", "src/backend", "generated-headers"], "make", cwd=tree)
        _run(["make", f"-j{os.cpu_count() or 2}", "-C", "src/test/regress"], "make", cwd=tree)
    missing = [str(p) for p in wanted if not p.is_file()]
    if missing:
        raise ProvisionError(f"make finished but these are missing: {missing}")
    return regress


# ------------------------------------------------------------------------------ cluster


class Cluster:
    """A throwaway PostgreSQL 15 cluster run as the cluster user, reached by Unix socket."""

    def __init__(self, label: str, log: Log, settings: dict[str, str] | None = None) -> None:
        self.prefix = _as_cluster_user()
        self.dir = Path(tempfile.mkdtemp(prefix=f"backproof-{label}-"))
        _give_to_cluster_user(self.dir)
        self.data = self.dir / "data"
        self.port = _free_port()
        self.log = log
        self.settings = {"listen_addresses": "''", "fsync": "off", **(settings or {})}
        self.started = False

    def conn(self, user: str = "postgres") -> list[str]:
        return ["-h", str(self.dir), "-p", str(self.port), "-U", user]

    def bin(self, name: str) -> list[str]:
        return [*self.prefix, str(PG15_BIN / name)]

    def start(self) -> None:
        _run(
            [
                *self.bin("initdb"),
                "-D",
                self.data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
            ],
            "initdb",
            cwd=self.dir,
        )
        opts = f"-p {self.port} -k {self.dir} " + " ".join(
            f"-c {k}={v}" for k, v in self.settings.items()
        )
        _run(
            [
                *self.bin("pg_ctl"),
                "-D",
                self.data,
                "-l",
                self.dir / "server.log",
                "-o",
                opts,
                "-w",
                "-t",
                "120",
                "start",
            ],
            "pg_ctl start",
            cwd=self.dir,
        )
        self.started = True

    def psql(self, sql: str, db: str = "postgres", user: str = "postgres") -> str:
        return _run(
            [
                *self.bin("psql"),
                *self.conn(user),
                "-d",
                db,
                "-X",
                "-At",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            f"psql ({db})",
            cwd=self.dir,
            log_output=False,
        ).stdout

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            subprocess.run(
                [*self.bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                cwd=self.dir,
                env=_env(),
                check=False,
            )
        shutil.rmtree(self.dir, ignore_errors=True)


INFO_SQL = r"""
SELECT json_build_object(
  'server_version', version(),
  'server_version_num', current_setting('server_version_num')::int,
  'database_bytes', pg_database_size(current_database()),
  'database_size', pg_size_pretty(pg_database_size(current_database())),
  'relkinds', (SELECT json_object_agg(relkind, n) FROM (
      SELECT c.relkind, count(*) AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
      WHERE s.nspname !~ '^pg_' AND s.nspname <> 'information_schema' GROUP BY 1) k),
  'tables', (SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND s.nspname !~ '^pg_' AND s.nspname <> 'information_schema'),
  'functions', (SELECT count(*) FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace
      WHERE s.nspname !~ '^pg_' AND s.nspname <> 'information_schema'),
  'schemas', (SELECT json_agg(nspname ORDER BY nspname) FROM pg_namespace
      WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'),
  'roles', (SELECT json_agg(rolname ORDER BY rolname) FROM pg_roles WHERE rolname NOT LIKE 'pg\_%'),
  'probin', (SELECT json_agg(DISTINCT probin ORDER BY probin) FROM pg_proc WHERE probin IS NOT NULL),
  'databases', (SELECT json_agg(datname ORDER BY datname) FROM pg_database)
)
"""


def _regress_summary(output: str) -> str:
    """The block between pg_regress's closing '=====' rulers, e.g. 'All 217 tests passed.'"""
    lines = output.splitlines()
    rulers = [i for i, line in enumerate(lines) if re.fullmatch(r"\s*=+\s*", line)]
    if len(rulers) >= 2:
        body = lines[rulers[-2] + 1 : rulers[-1]]
        return " ".join(line.strip() for line in body if line.strip())
    return lines[-1].strip() if lines else ""


def build_dump(log: Log, timer: Timer, tree: Path, regress: Path) -> dict:
    out_dir = regression_dir() / "pg_regress"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    _give_to_cluster_user(out_dir)  # the server writes COPY TO output there
    with Cluster("regress", log, {"max_prepared_transactions": "2"}) as cluster:
        with timer.step("initdb + start PG15 cluster"):
            cluster.start()
        with timer.step("pg_regress parallel_schedule"):
            proc = _run(
                [
                    *cluster.prefix,
                    regress / "pg_regress",
                    f"--inputdir={regress}",
                    f"--outputdir={out_dir}",
                    f"--bindir={PG15_BIN}",
                    f"--dlpath={regress}",
                    f"--host={cluster.dir}",
                    f"--port={cluster.port}",
                    f"--schedule={regress / 'parallel_schedule'}",
                    "--max-concurrent-tests=20",
                ],
                "pg_regress",
                cwd=out_dir,
                check=False,
                timeout=3600,
            )
            (out_dir / "pg_regress.log").write_text(proc.stdout + proc.stderr)
            summary = _regress_summary(proc.stdout)
            log(f"pg_regress exit {proc.returncode}: {summary}")
        dbs = cluster.psql("SELECT datname FROM pg_database").split()
        if "regression" not in dbs:
            raise ProvisionError(
                f"pg_regress did not create the regression database "
                f"(exit {proc.returncode}); see {out_dir / 'pg_regress.log'}"
            )
        info = json.loads(cluster.psql(INFO_SQL, db="regression"))
        if info["tables"] < 100:
            raise ProvisionError(
                f"regression database has only {info['tables']} tables; "
                f"see {out_dir / 'pg_regress.log'}"
            )
        with timer.step("pg_dump -Fc regression"):
            tmp_dump = cluster.dir / "regression.dump"
            _run(
                [*cluster.bin("pg_dump"), *cluster.conn(), "-Fc", "-f", tmp_dump, "regression"],
                "pg_dump",
                cwd=cluster.dir,
            )
            roles_sql = _run(
                [
                    *cluster.bin("pg_dumpall"),
                    *cluster.conn(),
                    "--roles-only",
                    "--no-role-passwords",
                ],
                "pg_dumpall --roles-only",
                cwd=cluster.dir,
            ).stdout
            toc = _run(
                [*cluster.bin("pg_restore"), "-l", tmp_dump],
                "pg_restore -l",
                cwd=cluster.dir,
                log_output=False,
            ).stdout
            partial = regression_dir() / "regression.dump.partial"
            shutil.copyfile(tmp_dump, partial)
            partial.chmod(0o644)
    probin_abs = [p for p in info["probin"] if p.startswith("/")]
    info.update(
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        dump=str(dump_path()),
        dump_bytes=partial.stat().st_size,
        dump_sha256=hashlib.sha256(partial.read_bytes()).hexdigest(),
        dump_toc_entries=sum(1 for line in toc.splitlines() if line and not line.startswith(";")),
        pg_dump_version=_run(
            [PG15_BIN / "pg_dump", "--version"], "pg_dump --version", log_output=False
        ).stdout.strip(),
        roles_sql=str(roles_path()),
        source_package=f"{SOURCE_PACKAGE} {_tree_version(tree)}",
        source_tree=str(tree),
        configure_flags=list(CONFIGURE_FLAGS),
        regress_lib_dir=str(regress),
        probin_absolute=probin_abs,
        pg_regress={
            "exit_code": proc.returncode,
            "summary": summary,
            "log": str(out_dir / "pg_regress.log"),
            "diffs": str(out_dir / "regression.diffs")
            if (out_dir / "regression.diffs").exists()
            else None,
        },
    )
    roles_path().write_text(roles_sql)
    return info


# ---------------------------------------------------------------------- restore check


def _restore_errors(stderr: str) -> list[str]:
    prefix = "pg_restore: error: "
    out = []
    for line in stderr.splitlines():
        if line.startswith(prefix):
            msg = line[len(prefix) :]
            out.append(msg.removeprefix("could not execute query: "))
    return out


def _normalise(msg: str) -> str:
    """The message with object names blanked, so that errors of one kind group together."""
    msg = re.sub(r'"[^"]*"', '"…"', msg)
    msg = re.sub(r"\b(function|aggregate) [\w.]+\([^)]*\)", r"\1 …(…)", msg)
    return re.sub(r"\btype public\.\w+", "type public.…", msg)


TABLES_SQL = (
    "SELECT s.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace s"
    " ON s.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND s.nspname !~ '^pg_'"
    " AND s.nspname <> 'information_schema' ORDER BY 1"
)


def verify_restore(log: Log) -> dict:
    """Restore the dump into a fresh PG15 cluster four ways; return what pg_restore said."""
    dump = dump_path()
    results: dict = {"dump": str(dump), "modes": []}
    with Cluster("restore-check", log) as cluster:
        cluster.start()
        roles = _run(
            [
                *cluster.bin("psql"),
                *cluster.conn(),
                "-d",
                "postgres",
                "-X",
                "-q",
                "-f",
                roles_path(),
            ],
            "psql -f roles.sql",
            cwd=cluster.dir,
            check=False,
            log_output=False,
        )
        results["roles_sql_errors"] = [
            line for line in roles.stderr.splitlines() if "ERROR" in line
        ]
        cluster.psql(f"CREATE ROLE {RESTORE_ROLE} LOGIN CREATEDB CREATEROLE")
        modes = [
            ("superuser", "postgres", []),
            ("superuser --no-owner --no-privileges", "postgres", ["--no-owner", "--no-privileges"]),
            ("owner CREATEDB CREATEROLE (non-superuser)", RESTORE_ROLE, []),
            (
                "owner CREATEDB CREATEROLE (non-superuser) --no-owner --no-privileges",
                RESTORE_ROLE,
                ["--no-owner", "--no-privileges"],
            ),
        ]
        for i, (name, user, flags) in enumerate(modes):
            db = f"restore_{i}"
            cluster.psql(f"CREATE DATABASE {db}", user=user)  # owned by the restoring role
            started = time.monotonic()
            proc = _run(
                [*cluster.bin("pg_restore"), *cluster.conn(user), "-d", db, *flags, dump],
                f"pg_restore ({name})",
                cwd=cluster.dir,
                check=False,
                log_output=False,
            )
            seconds = round(time.monotonic() - started, 1)
            errors = _restore_errors(proc.stderr)
            counts: dict[str, int] = {}
            for e in errors:
                counts[e] = counts.get(e, 0) + 1
            grouped: dict[str, int] = {}
            for e in errors:
                grouped[_normalise(e)] = grouped.get(_normalise(e), 0) + 1
            tables = cluster.psql(TABLES_SQL, db=db).split()
            if i == 0:
                reference = set(tables)
            ignored = re.search(r"errors ignored on restore: (\d+)", proc.stderr)
            results["modes"].append(
                {
                    "mode": name,
                    "user": user,
                    "flags": flags,
                    "exit_code": proc.returncode,
                    "seconds": seconds,
                    "errors": len(errors),
                    "errors_ignored_reported": int(ignored.group(1)) if ignored else 0,
                    "tables_restored": len(tables),
                    "tables_missing_vs_superuser": sorted(reference - set(tables)),
                    "distinct_errors": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
                    "error_groups": dict(sorted(grouped.items(), key=lambda kv: (-kv[1], kv[0]))),
                }
            )
            log(
                f"restore as {name}: exit {proc.returncode}, {len(errors)} errors, "
                f"{len(tables)} tables, {seconds}s"
            )
    (regression_dir() / "restore_check.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


# ---------------------------------------------------------------------------- main


def ensure(log: Log = _silent, *, force: bool = False) -> Path:
    """Path of the cached regression dump, building it first if needed."""
    regression_dir().mkdir(parents=True, exist_ok=True)
    for d in (cache_dir(), regression_dir()):
        _world_readable_dir(d)
    with _lock(regression_dir() / ".lock"):
        if dump_path().exists() and not force:
            _warn_stale(log)
            return dump_path()
        timer = Timer(log)
        started = time.monotonic()
        with timer.step("apt sources (deb-src) + update"):
            changed = ensure_deb_src(log)
            updated = False
            if changed or not _source_versions():
                _need_root("apt-get update")
                _run(["apt-get", "update", "-q"], "apt-get update")
                updated = True
        with timer.step("build packages"):
            updated = ensure_packages(log, updated)
        with timer.step("apt-get source"):
            tree = ensure_source(log, updated)
        regress = ensure_built(tree, log, timer)
        info = build_dump(log, timer, tree, regress)
        info["timings_s"] = {**timer.steps, "total": round(time.monotonic() - started, 1)}
        missing = [p for p in info["probin_absolute"] if not Path(p).is_file()]
        if missing:
            raise ProvisionError(f"functions in the dump point at missing files: {missing}")
        info_path().write_text(json.dumps(info, indent=2) + "\n")
        (regression_dir() / "regression.dump.partial").replace(dump_path())
        log(
            f"{info['tables']} tables, {info['database_size']}, roles {info['roles']}, "
            f"dump {info['dump_bytes'] / 1e6:.1f} MB, total {info['timings_s']['total']}s"
        )
        return dump_path()


def _warn_stale(log: Log) -> None:
    try:
        info = json.loads(info_path().read_text())
    except (OSError, ValueError):
        _stderr(f"warning: {info_path()} is missing or unreadable; --force rebuilds")
        return
    missing = [p for p in info.get("probin_absolute", []) if not Path(p).is_file()]
    if missing:
        _stderr(
            f"warning: the dump's C functions point at missing files {missing}; restoring "
            f"them will fail. --force (or deleting {regression_dir()}) rebuilds"
        )
    else:
        log(f"{dump_path()} already built ({info.get('created_at')})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--force",
        action="store_true",
        help="rebuild the dump even if it exists (reuses the built source tree)",
    )
    ap.add_argument(
        "--verify-restore",
        action="store_true",
        help="restore the dump into a fresh PG15 cluster four ways, write restore_check.json",
    )
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    log: Log = _silent if args.quiet else _stderr
    os.umask(0o022)
    try:
        if not (PG15_BIN / "postgres").exists() and not _is_root():
            raise ProvisionError(f"{PG15_BIN} is missing: apt-get install postgresql-15 (as root)")
        path = ensure(log, force=args.force)
        if args.verify_restore:
            verify_restore(log)
    except ProvisionError as exc:
        _stderr(f"error: {exc}")
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
