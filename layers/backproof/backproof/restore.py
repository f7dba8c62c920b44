"""Restoring an archive with pg_restore, and operator restores (`backproof restore`).

Every message pg_restore prints is classified: fatal, or known-harmless (a setting an older
server does not know, ownership of a role that does not exist here, the comment on plpgsql
that only its owner may set). One fatal message fails the restore; harmless ones are kept
as evidence. Nothing unknown is ever taken as harmless.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .instances import RestoreTarget
from .tools import PgProgram

# -- message classification -------------------------------------------------------------------
_PREFIX = "pg_restore: "
_CONTEXT = re.compile(r"^pg_restore: (while PROCESSING TOC:|from TOC entry .*)$")
_INFO = re.compile(
    r"^pg_restore: (connecting to database|creating |processing |launching item|finished item|"
    r"entering |finished main parallel loop|executing |disabling triggers|enabling triggers|"
    r"implied data-only restore|dropping |setting owner|restoring )"
)


@dataclass(frozen=True)
class HarmlessRule:
    reason: str
    error: re.Pattern[str]
    command: re.Pattern[str] | None = None  # must also match the failing command, when given

    def matches(self, error: str, command: str) -> bool:
        if not self.error.search(error):
            return False
        return self.command is None or bool(self.command.search(command))


HARMLESS_RULES: tuple[HarmlessRule, ...] = (
    HarmlessRule(
        "a setting the target server does not know (the archive was written by a newer pg_dump)",
        re.compile(r'unrecognized configuration parameter "[^"]+"'),
        re.compile(r"^\s*(SET\s|SELECT pg_catalog\.set_config\()", re.I),
    ),
    HarmlessRule(
        "only the owner of plpgsql may comment on it; the comment is cosmetic",
        re.compile(r"must be owner of extension plpgsql"),
        re.compile(r"^\s*COMMENT ON EXTENSION plpgsql", re.I),
    ),
    HarmlessRule(
        "the schema comment belongs to the server's own public schema",
        re.compile(r"must be owner of schema public"),
        re.compile(r"^\s*COMMENT ON SCHEMA public", re.I),
    ),
    HarmlessRule(
        "the public schema exists in every new database",
        re.compile(r'schema "public" already exists'),
        re.compile(r"^\s*CREATE SCHEMA public", re.I),
    ),
    HarmlessRule(
        "ownership and grants name a role that does not exist on this server; contents unaffected",
        re.compile(r'role "[^"]+" does not exist'),
        re.compile(r"(\bOWNER TO\b|^\s*(GRANT|REVOKE|ALTER DEFAULT PRIVILEGES)\b)", re.I),
    ),
    HarmlessRule(
        "--clean drops a partition's inherited constraint before its table; dropping the table "
        "removes it anyway, and a table that were not dropped would fail its re-creation",
        re.compile(r'cannot drop inherited constraint "[^"]+" of relation "[^"]+"'),
        re.compile(r"^\s*ALTER TABLE (IF EXISTS )?ONLY \S+.* DROP CONSTRAINT ", re.I),
    ),
    HarmlessRule(
        "ownership cannot be given to a role this login is not a member of; contents unaffected",
        re.compile(r'must be (member|able to SET ROLE) of role "[^"]+"'),
        re.compile(r"\bOWNER TO\b", re.I),
    ),
)


@dataclass(frozen=True)
class RestoreMessage:
    """One message from pg_restore with its context lines and verdict."""

    text: str
    severity: str  # error | warning | info
    fatal: bool
    reason: str
    toc_entry: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _split_messages(output: str) -> list[tuple[list[str], list[str]]]:
    """Group lines into (context lines, message lines). Continuation lines (DETAIL, HINT,
    'Command was:', the statement) do not start with 'pg_restore: '."""
    groups: list[tuple[list[str], list[str]]] = []
    context: list[str] = []
    for line in output.splitlines():
        if line.startswith(_PREFIX):
            if _CONTEXT.match(line):
                context.append(line)
                continue
            groups.append((context, [line]))
            context = []
        elif groups and line.strip():
            groups[-1][1].append(line)
        elif line.strip():  # text before any pg_restore line: keep it, classify it
            groups.append(([], [line]))
    if context:
        groups.append(([], context))
    return groups


def classify_message(context: list[str], lines: list[str]) -> RestoreMessage:
    head = lines[0]
    body = "\n".join(lines)
    text = "\n".join([*context, *lines])
    toc = next((c[len(_PREFIX):] for c in context if "TOC entry" in c), "")
    if _INFO.match(head):
        return RestoreMessage(text, "info", False, "progress information", toc)
    if head.startswith("pg_restore: warning: errors ignored on restore:"):
        return RestoreMessage(text, "warning", False,
                              "summary of the errors listed above (each classified on its own)",
                              toc)
    severity = "warning" if head.startswith("pg_restore: warning:") else "error"
    command = body.split("Command was:", 1)[1] if "Command was:" in body else ""
    for rule in HARMLESS_RULES:
        if rule.matches(body, command.strip()):
            return RestoreMessage(text, severity, False, rule.reason, toc)
    return RestoreMessage(text, severity, True, "not a known-harmless message", toc)


def classify_pg_restore_output(output: str) -> list[RestoreMessage]:
    """Every message pg_restore printed, each classified fatal or known-harmless."""
    return [classify_message(ctx, lines) for ctx, lines in _split_messages(output)]


# -- running pg_restore -----------------------------------------------------------------------
class PgRestore:
    """pg_restore as a child process; the argument list is built here, readable without running
    it, and never holds a password (PGPASSWORD travels in the environment)."""

    def __init__(
        self, program: PgProgram, archive: Path, target: RestoreTarget, *, jobs: int = 1,
        list_file: Path | None = None, clean: bool = False, keep_owners: bool = False,
        single_transaction: bool = False,
    ) -> None:
        self.program = program
        self.target = target
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
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=self.target.child_env(), start_new_session=True, text=True, errors="replace",
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
            seconds=round(time.monotonic() - started, 3), exit_code=code,
            messages=classify_pg_restore_output(output), program=self.program,
        )


def _drain(proc: subprocess.Popen[str], lines: list[str],
           on_line: Callable[[str], None] | None) -> None:
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


# -- selecting tables -------------------------------------------------------------------------
_TOC_LINE = re.compile(r"^(\d+); (\d+) (\d+) (.+)$")
# Object types whose TOC tag is "<schema> <table> ..." for the table they belong to.
_TABLE_SCOPED = ("TABLE", "TABLE DATA", "DEFAULT", "CONSTRAINT", "FK CONSTRAINT", "TRIGGER",
                 "POLICY", "ROW SECURITY", "TABLE ATTACH")
_TABLE_SQL_SCOPED = ("INDEX", "SEQUENCE", "SEQUENCE OWNED BY", "SEQUENCE SET", "COMMENT",
                     "STATISTICS", "RULE")


# Longest first, so "TABLE DATA" is not read as "TABLE" with schema "DATA".
_KNOWN_DESCS = sorted(
    (*_TABLE_SCOPED, *_TABLE_SQL_SCOPED, "SCHEMA", "EXTENSION", "MATERIALIZED VIEW",
     "MATERIALIZED VIEW DATA", "VIEW", "FUNCTION", "INDEX ATTACH", "TYPE", "DOMAIN",
     "LARGE OBJECT", "BLOB", "BLOBS", "ACL", "SEQUENCE"),
    key=len, reverse=True)


@dataclass(frozen=True)
class TocEntry:
    line: str
    dump_id: int
    desc: str
    schema: str
    tag: str


def parse_toc_line(line: str) -> TocEntry | None:
    """`3390; 1259 16385 TABLE public orders owner` -> TocEntry; None for comments."""
    match = _TOC_LINE.match(line.strip())
    if not match:
        return None
    rest = match[4]
    for desc in _KNOWN_DESCS:
        if rest.startswith(desc + " "):
            fields = rest[len(desc) + 1:].split(" ")
            return TocEntry(line, int(match[1]), desc, fields[0] if fields else "",
                            " ".join(fields[1:-1]) if len(fields) > 2 else "")
    parts = rest.split(" ")
    return TocEntry(line, int(match[1]), parts[0], "", " ".join(parts[1:]))


def archive_toc(program: PgProgram, archive: Path) -> list[str]:
    result = subprocess.run([str(program.path), "--list", str(archive)], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        from .errors import RestoreFailed

        raise RestoreFailed(f"pg_restore cannot read the archive: {result.stderr.strip()}")
    return result.stdout.splitlines()


def entry_sql(program: PgProgram, archive: Path, entries: Iterable[TocEntry]) -> dict[int, str]:
    """The SQL of the given TOC entries, by dump id, read from the archive (no database)."""
    wanted = list(entries)
    if not wanted:
        return {}
    with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as fh:
        fh.write("\n".join(e.line for e in wanted) + "\n")
        list_path = Path(fh.name)
    try:
        script = subprocess.run(
            [str(program.path), "--schema-only", f"--use-list={list_path}", "--file=-",
             str(archive)],
            capture_output=True, text=True, check=False,
        ).stdout
    finally:
        list_path.unlink(missing_ok=True)
    # pg_dump prefixes each entry with "-- Name: ...; Type: ...; Schema: ...; Owner: ..." and
    # entries come out in list order, so the n-th header belongs to the n-th entry.
    chunks = re.split(r"^--\n-- (?:Data for )?Name: .*\n--\n", script, flags=re.M)[1:]
    return {e.dump_id: chunk for e, chunk in zip(wanted, chunks, strict=False)}


def quote_ident_like_pg_dump(name: str) -> str:
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


def _qualified_name_pattern(tables: set[tuple[str, str]]) -> re.Pattern[str]:
    """Matches `schema.table` as pg_dump prints it (quoted only when needed) in SQL text."""
    names = []
    for schema, name in tables:
        for q_schema in {quote_ident_like_pg_dump(schema), f'"{schema}"'}:
            names += [f"{q_schema}.{q}" for q in {quote_ident_like_pg_dump(name), f'"{name}"'}]
    return re.compile(r"(?<![\w\"])(" + "|".join(re.escape(n) for n in names) + r")(?![\w\"])")


def _object_name(entry: TocEntry) -> tuple[str, str]:
    return entry.schema, entry.tag.split(" ", 1)[0] if entry.tag else ""


def select_table_entries(program: PgProgram, archive: Path, tables: set[tuple[str, str]],
                         present: set[tuple[str, str]] | None = None) -> list[str]:
    """TOC lines restoring the given tables with their data, indexes, constraints, defaults,
    triggers and owned sequences, and nothing else.

    Foreign keys of other tables that point at a selected one are re-added only when that
    other table is in `present` (the target's tables; None means all): a key cannot be added
    to a table the target does not have."""
    entries = [e for e in (parse_toc_line(x) for x in archive_toc(program, archive)) if e]
    keep = {e.dump_id for e in entries if e.desc in _TABLE_SCOPED and _object_name(e) in tables}
    # Indexes, sequences and comments do not name their table in the TOC, and foreign keys of
    # other tables that point at a selected one must be dropped and re-added around it: read
    # their SQL.
    maybe = [e for e in entries if e.dump_id not in keep and (
        (e.desc in _TABLE_SQL_SCOPED and e.desc != "SEQUENCE SET") or e.desc == "FK CONSTRAINT")]
    pattern = _qualified_name_pattern(tables)
    sequences = set()
    absent = {e.dump_id for e in maybe if e.desc == "FK CONSTRAINT" and present is not None
              and _object_name(e) not in present}
    for dump_id, body in entry_sql(program, archive, maybe).items():
        if dump_id not in absent and pattern.search(body):
            keep.add(dump_id)
    for e in maybe:
        if e.dump_id in keep and e.desc in ("SEQUENCE", "SEQUENCE OWNED BY"):
            sequences.add(_object_name(e))
    keep |= {e.dump_id for e in entries
             if e.desc in ("SEQUENCE", "SEQUENCE SET") and _object_name(e) in sequences}
    # A partition's indexes (plain, or behind a constraint) are attached to the parent's index.
    indexes = {_object_name(e) for e in entries if e.dump_id in keep and e.desc == "INDEX"}
    indexes |= {(e.schema, e.tag.split(" ")[1]) for e in entries
                if e.dump_id in keep and e.desc == "CONSTRAINT" and " " in e.tag}
    keep |= {e.dump_id for e in entries if e.desc == "INDEX ATTACH" and _object_name(e) in indexes}
    return [e.line for e in entries if e.dump_id in keep]


def expand_partitioned(program: PgProgram, archive: Path,
                       names: list[tuple[str | None, str]]) -> list[tuple[str, str]]:
    """Partitioned tables named with --table (the manifest lists only their partitions): each
    with every partition below it, read from the archive's TOC. BadInput if not there."""
    from .errors import BadInput

    entries = [e for e in (parse_toc_line(x) for x in archive_toc(program, archive)) if e]
    tables = [_object_name(e) for e in entries if e.desc == "TABLE"]
    attach = [e for e in entries if e.desc == "TABLE ATTACH"]
    bodies = entry_sql(program, archive, attach)
    chosen: list[tuple[str, str]] = []
    for schema, name in names:
        matches = [t for t in tables if t[1] == name and schema in (None, t[0])]
        if not matches and schema is None:
            matches = [t for t in tables if t[1] == name.lower()]
        if len(matches) != 1:
            shown = f"{schema}.{name}" if schema else name
            raise BadInput(f"table {shown!r} is not in the backup (or the name is ambiguous: "
                           "add the schema)")
        todo = [matches[0]]
        while todo:
            parent = todo.pop()
            if parent in chosen:
                continue
            chosen.append(parent)
            below = re.compile(r"ALTER TABLE ONLY " + _qualified_name_pattern({parent}).pattern
                               + r" ATTACH PARTITION ")
            todo += [_object_name(e) for e in attach if below.search(bodies.get(e.dump_id, ""))]
    return chosen


# -- operator restores -------------------------------------------------------------------------
@dataclass
class RestorePlan:
    backup_id: str
    database: str
    target: str  # display form, never the password
    target_dbname: str
    tables: list[str]  # empty: everything
    target_tables: int  # user tables already in the target
    clean: bool
    safety_backup: bool
    rows: int

    def lines(self) -> list[str]:
        what = ", ".join(self.tables) if self.tables else "the whole database"
        out = [
            f"backup:  {self.backup_id} ({self.database})",
            f"target:  {self.target}" + (f" (holds {self.target_tables} tables)"
                                         if self.target_tables else " (empty)"),
            f"restore: {what}, {self.rows} rows",
        ]
        if self.clean:
            out.append("clean:   objects from the backup are dropped and re-created in the target")
        if self.safety_backup:
            out.append("safety:  a backup of the target (tier safety) is taken first")
        return out


_USER_TABLES_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
"""


def target_relations(spec: Any) -> set[tuple[str, str]]:
    with spec.connect(autocommit=True) as conn:
        return {(s, n) for s, n in conn.execute(_USER_TABLES_SQL).fetchall()}


def resolve_tables(manifest: Any, names: list[str], *,
                   unresolved: list[tuple[str | None, str]] | None = None,
                   ) -> list[tuple[str, str]]:
    """(schema, table) for each --table name. Names the manifest does not list raise BadInput,
    or, with `unresolved`, are collected there (partitioned parents: see expand_partitioned)."""
    from .checks import resolve_table, split_identifier_path
    from .errors import BadInput

    chosen: list[tuple[str, str]] = []
    for name in names:
        parts = split_identifier_path(name)
        if len(parts) > 2:
            raise BadInput(f"--table wants [SCHEMA.]TABLE, got {name!r}")
        schema, table = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
        found = resolve_table(manifest, table, schema)
        if found is None and unresolved is not None:
            unresolved.append((schema, table))
            continue
        if found is None:
            raise BadInput(f"table {name!r} is not in backup {manifest.backup_id} (or the name is "
                           "ambiguous: add the schema)")
        if found not in chosen:
            chosen.append(found)
    return chosen


@dataclass
class RestoreRequest:
    backup_id: str
    target_url: str
    database: str | None = None
    tables: list[str] = field(default_factory=list)
    dry_run: bool = False
    clean: bool = False
    confirm: str | None = None
    jobs: int | None = None
    keep_owners: bool = False
    pg_bin_dir: Path | None = None
    operator_checks: Any = None


@dataclass
class RestoreResult:
    plan: RestorePlan
    report: Any = None  # VerificationReport after a real restore
    safety_backup_id: str | None = None


def plan_restore(store: Any, req: RestoreRequest) -> tuple[
        RestorePlan, Any, Any, Any, list[tuple[str, str]], list[tuple[str | None, str]]]:
    """Validate everything and decide what would happen; touches nothing. BadInput (exit 2)
    on any problem with the request. Names the manifest does not list come back separately:
    they may be partitioned tables, resolved from the archive once its integrity is proved."""
    from .errors import BadInput
    from .source import SourceSpec

    target = SourceSpec.from_url(req.target_url)
    stored = store.find(req.backup_id, req.database)
    manifest = store.load_manifest(stored)
    unresolved: list[tuple[str | None, str]] = []
    selected = resolve_tables(manifest, req.tables, unresolved=unresolved)
    existing = target_relations(target)
    if existing and not req.clean:
        clash = existing & {(t.schema, t.name) for t in manifest.inventory.tables}
        parents = {name for _, name in unresolved} & {name for _, name in existing}
        if not (selected or unresolved) or clash & set(selected) or parents:
            raise BadInput(
                f"target database {target.dbname!r} is not empty ({len(existing)} relations); "
                f"restoring over it needs --clean --confirm {target.dbname}"
            )
    if req.clean and req.confirm != target.dbname:
        raise BadInput(f"--clean replaces objects in {target.dbname!r}: type its name back with "
                       f"--confirm {target.dbname}")
    rows = sum(t.rows for t in manifest.inventory.tables
               if not (selected or unresolved) or (t.schema, t.name) in selected)
    plan = RestorePlan(
        backup_id=stored.backup_id, database=stored.database, target=target.display,
        target_dbname=target.dbname,
        tables=[f"{s}.{n}" for s, n in selected] + [
            f"{s + '.' if s else ''}{n} (with its partitions)" for s, n in unresolved],
        target_tables=len(existing), clean=req.clean, safety_backup=req.clean and bool(existing),
        rows=rows,
    )
    return plan, target, stored, manifest, selected, unresolved


def verified_integrity(store: Any, stored: Any, archive: Path,
                       progress: Callable[[str], None]) -> list[Any]:
    """Integrity results for the report; IntegrityFailure (exit 1) if any check fails."""
    from .verify import IntegrityFailure, integrity_checks

    manifest, results = integrity_checks(store, stored, archive_path=archive, progress=progress)
    failed = [r for r in results if r.failed]
    if failed or manifest is None:
        names = ", ".join(f"{r.check} (expected {r.expected}, found {r.found})" for r in failed)
        raise IntegrityFailure(f"backup {stored.backup_id} failed integrity checks, the target "
                               f"was not touched: {names}", results, manifest)
    return results


def _selection_list(program: PgProgram, archive: Path, selected: list[tuple[str, str]],
                    target_url: str, work: Path) -> Path:
    """pg_restore's --use-list file for a selective restore into the target as it is now."""
    from .source import SourceSpec

    present = target_relations(SourceSpec.from_url(target_url)) | set(selected)
    list_file = work / "selected.list"
    entries = select_table_entries(program, archive, set(selected), present=present)
    list_file.write_text("\n".join(entries) + "\n")
    return list_file


def restore_backup(store: Any, req: RestoreRequest,
                   progress: Callable[[str], None] | None = None) -> RestoreResult:
    """Operator restore: plan, integrity, safety backup, pg_restore, checks."""
    from .backup import BackupRequest, run_backup
    from .checks import run_checks
    from .report import VerificationReport
    from .store import validate_database_name
    from .verify import restore_check, select_pg_restore, target_from_url

    note = progress or (lambda _m: None)
    plan, target, stored, manifest, selected, unresolved = plan_restore(store, req)
    result = RestoreResult(plan)
    if req.dry_run:
        return result
    pg_restore = select_pg_restore(manifest, [req.pg_bin_dir] if req.pg_bin_dir else None)
    report = VerificationReport(stored.backup_id, stored.database, kind="restore")
    report.tools["pg_restore"] = {"version": pg_restore.version, "path": str(pg_restore.path)}
    report.instance = {"kind": "existing", "target": plan.target}
    with tempfile.TemporaryDirectory(prefix="backproof-restore-") as work:
        archive = Path(work) / "archive.dump"
        note("checking the backup's integrity")
        t0 = time.monotonic()
        report.add(*verified_integrity(store, stored, archive, note))  # before the target
        report.timings["integrity_seconds"] = round(time.monotonic() - t0, 3)
        if plan.safety_backup:
            note("taking a safety backup of the target")
            try:
                name = validate_database_name(target.dbname)
            except Exception:
                name = f"{stored.database}-restore-target"
            safety = run_backup(BackupRequest(source=target, store=store, database_name=name,
                                              tier="safety"))
            result.safety_backup_id = safety.manifest.backup_id
            report.tools["safety_backup"] = {"backup_id": safety.manifest.backup_id,
                                             "database": name}
        if unresolved:
            selected += [t for t in expand_partitioned(pg_restore, archive, unresolved)
                         if t not in selected]
        list_file = (_selection_list(pg_restore, archive, selected, req.target_url, Path(work))
                     if selected else None)
        rt = target_from_url(req.target_url)
        note(f"restoring into {plan.target}")
        outcome = PgRestore(pg_restore, archive, rt, jobs=req.jobs or os.cpu_count() or 1,
                            list_file=list_file, clean=req.clean,
                            keep_owners=req.keep_owners).run()
        report.timings["restore_seconds"] = outcome.seconds
        report.restore_messages = outcome.messages
        report.add(*restore_check(outcome))
    note("checking the restored tables against the manifest")
    t0 = time.monotonic()
    only = set(selected) if selected else (
        {(t.schema, t.name) for t in manifest.inventory.tables} if plan.target_tables else None)
    with target.connect() as conn:
        report.add(*run_checks(manifest, conn, req.operator_checks, tables=only))
    report.timings["checks_seconds"] = round(time.monotonic() - t0, 3)
    result.report = report.finish()
    return result


def add_restore_parser(sub: Any) -> None:
    from .cli import add_output_args, add_store_args
    from .verify import add_operator_check_args

    p = sub.add_parser("restore", help="restore a backup into a database you name")
    p.add_argument("backup_id", metavar="BACKUP_ID|latest")
    add_store_args(p)
    p.add_argument("--database-name", help="the database the backup is filed under")
    p.add_argument("--target-url", required=True,
                   help="postgresql://USER@HOST:PORT/DBNAME of an existing database (password "
                        "from PGPASSWORD or a passfile)")
    p.add_argument("--table", action="append", default=[], metavar="[SCHEMA.]TABLE",
                   help="restore only this table with its indexes and constraints (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print what would happen; touch nothing")
    p.add_argument("--clean", action="store_true",
                   help="drop and re-create the backup's objects in a non-empty target")
    p.add_argument("--confirm", metavar="DBNAME", help="the target database's name, typed back")
    p.add_argument("--keep-owners", action="store_true",
                   help="restore ownership and grants (the roles must exist on the target)")
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--pg-bin-dir", type=Path)
    add_operator_check_args(p)
    add_output_args(p)
    p.set_defaults(handler=cmd_restore)


def cmd_restore(args: Any) -> int:
    import json
    import sys

    from rich.console import Console

    from .checks import OperatorChecks
    from .report import render_report
    from .store import BackupStore
    from .verify import StepProgress

    store = BackupStore.from_url(args.store)
    req = RestoreRequest(
        backup_id=args.backup_id, target_url=args.target_url, database=args.database_name,
        tables=args.table, dry_run=args.dry_run, clean=args.clean, confirm=args.confirm,
        jobs=args.jobs, keep_owners=args.keep_owners, pg_bin_dir=args.pg_bin_dir,
        operator_checks=OperatorChecks.from_cli(args.asserts, args.fresh, args.checks_file),
    )
    with StepProgress(enabled=not args.json and sys.stderr.isatty()) as status:
        result = restore_backup(store, req, progress=status.update)
    plan = result.plan
    if args.json:
        out: dict[str, Any] = {"dry_run": req.dry_run, "plan": asdict(plan),
                               "safety_backup_id": result.safety_backup_id}
        if result.report is not None:
            out.update(result.report.summary())
        print(json.dumps(out, default=str))
    else:
        print("dry run, nothing touched:" if req.dry_run else "restore plan:")
        print("\n".join(f"  {line}" for line in plan.lines()))
        if result.safety_backup_id:
            print(f"safety backup: {result.safety_backup_id}")
        if result.report is not None:
            render_report(result.report, Console(highlight=False))
    if result.report is None:
        return 0
    return 0 if result.report.passed else 1


# -- data offsets for archives written to a pipe -----------------------------------------------
# pg_dump writing a custom archive to a pipe (as every streamed backup does) cannot go back and
# record where each table's data starts, so a parallel pg_restore scans the file to find them:
# 20-30% slower restores, and a pessimistic measured RTO. The TOC keeps a fixed-width slot for
# each position (a flag byte and offSize bytes), so once the archive is a local file the slots
# can be filled in place. Layout: src/bin/pg_dump/pg_backup_archiver.c (ReadHead, ReadToc) and
# pg_backup_custom.c (_StartData, _ReadExtraToc) in PostgreSQL.
_K_OFFSET_POS_NOT_SET, _K_OFFSET_POS_SET, _K_OFFSET_NO_DATA = 1, 2, 3
_BLK_DATA, _BLK_BLOBS = 1, 3
_ARCHIVE_CUSTOM = 1
_SUPPORTED_ARCHIVE_VERSIONS = ((1, 12), (1, 16))


class _ArchiveReader:
    def __init__(self, data: Any, pos: int = 0) -> None:
        self.data, self.pos, self.int_size = data, pos, 4

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return int(value)

    def int_(self) -> int:
        sign = self.byte()
        raw = bytes(self.data[self.pos:self.pos + self.int_size])
        self.pos += self.int_size
        if sign not in (0, 1) or len(raw) != self.int_size:
            raise ValueError("malformed integer in archive")
        value = int.from_bytes(raw, "little")
        return -value if sign else value

    def skip_str(self) -> bool:
        """Skip a string; False for the NULL string (length -1)."""
        length = self.int_()
        if length < -1:
            raise ValueError("malformed string length in archive")
        self.pos += max(length, 0)
        return length != -1


def _int_bytes(value: int, int_size: int) -> bytes:
    return b"\x00" + value.to_bytes(int_size, "little")


def _read_toc_slots(data: Any) -> tuple[list[tuple[int, int, int]], int, int, int]:
    """[(dump id, slot position, flag)] for every TOC entry, the data start, intSize, offSize.
    ValueError for anything unexpected."""
    if bytes(data[:5]) != b"PGDMP":
        raise ValueError("not a custom-format archive")
    version = (data[5], data[6])
    if not _SUPPORTED_ARCHIVE_VERSIONS[0] <= version <= _SUPPORTED_ARCHIVE_VERSIONS[1]:
        raise ValueError(f"archive version {version} not handled")
    reader = _ArchiveReader(data, 8)
    reader.int_size = reader.byte()
    off_size = reader.byte()
    if reader.byte() != _ARCHIVE_CUSTOM or not 1 <= reader.int_size <= 8 or off_size < 4:
        raise ValueError("not a custom-format archive")
    if version >= (1, 15):
        reader.byte()  # compression algorithm
    else:
        reader.int_()  # compression level
    for _ in range(7):  # creation time
        reader.int_()
    for _ in range(3):  # database name, server version, pg_dump version
        reader.skip_str()
    slots = [_read_toc_entry(reader, version, off_size) for _ in range(reader.int_())]
    return slots, reader.pos, reader.int_size, off_size


def _read_toc_entry(reader: _ArchiveReader, version: tuple[int, int],
                    off_size: int) -> tuple[int, int, int]:
    dump_id = reader.int_()
    had_dumper = reader.int_()
    if dump_id <= 0 or had_dumper not in (0, 1):
        raise ValueError("malformed TOC entry")
    for _ in range(4):  # tableoid, oid, tag, desc
        reader.skip_str()
    reader.int_()  # section
    for _ in range(6):  # defn, dropStmt, copyStmt, namespace, tablespace, tableam
        reader.skip_str()
    if version >= (1, 16):
        reader.int_()  # relkind
    reader.skip_str()  # owner
    reader.skip_str()  # "false" (with oids)
    while reader.skip_str():  # dependencies, NULL-terminated
        pass
    flag = reader.byte()
    if flag not in (_K_OFFSET_POS_NOT_SET, _K_OFFSET_POS_SET, _K_OFFSET_NO_DATA):
        raise ValueError("malformed data offset in TOC")
    slot = reader.pos - 1
    reader.pos += off_size
    return dump_id, slot, flag


def _search(data: Any, needles: tuple[bytes, ...], start: int, skip: int,
            window: int = 16 << 20) -> int:
    """Earliest position of any needle at or after `start`, plus `skip`; -1 if none. Searches
    the mapped file window by window (C speed, no copies) and drops each window's pages after
    it, so resident memory stays flat whatever the archive size."""
    longest = max(len(n) for n in needles)
    size = len(data)
    pos = start
    while pos < size:
        stop = min(pos + window + longest, size)
        hits = [h for h in (data.find(n, pos, stop) for n in needles) if h >= 0]
        if hits:
            return min(hits) + skip
        page = mmap.PAGESIZE * (pos // mmap.PAGESIZE)
        with contextlib.suppress(AttributeError, OSError, ValueError):
            data.madvise(mmap.MADV_DONTNEED, page, max(0, pos + window - page))
        pos += window
    return -1


def add_data_offsets(path: Path) -> int:
    """Record each data block's position in the TOC of a custom archive written to a pipe.

    Returns how many positions were filled; 0 (file untouched) when there is nothing to do or
    anything about the archive is unexpected. Blocks are found in TOC order: table data is
    COPY text, which holds no NUL bytes, and no chunk header holds five zero bytes in a row,
    so "end-of-block marker, block type, dump id" cannot occur inside a block. Large-object
    blocks are binary, so nothing after the first one is searched for.
    """
    with path.open("r+b") as fh:
        if path.stat().st_size < 32:
            return 0
        with mmap.mmap(fh.fileno(), 0) as data:
            try:
                slots, cursor, int_size, off_size = _read_toc_slots(data)
            except (ValueError, IndexError):
                return 0
            found: list[tuple[int, int]] = []
            for dump_id, slot, flag in slots:
                if flag != _K_OFFSET_POS_NOT_SET:
                    continue
                header = _int_bytes(dump_id, int_size)
                if data[cursor] in (_BLK_DATA, _BLK_BLOBS) and data[
                        cursor + 1:cursor + 1 + len(header)] == header:
                    position = cursor
                else:
                    marker = b"\x00" * (int_size + 1)
                    position = _search(data, (marker + bytes([_BLK_DATA]) + header,
                                              marker + bytes([_BLK_BLOBS]) + header),
                                       cursor, int_size + 1)
                if position < 0:
                    break
                found.append((slot, position))
                if data[position] == _BLK_BLOBS:
                    break
                cursor = position + 1
            if not found or found[0][1] != _read_toc_slots(data)[1]:
                return 0  # the first block must start right after the TOC, or we misread it
            for slot, position in found:
                data[slot] = _K_OFFSET_POS_SET
                data[slot + 1:slot + 1 + off_size] = position.to_bytes(off_size, "little")
            data.flush()
    return len(found)
