"""Restoring an archive with pg_restore, and operator restores (`backproof restore`).

Every message pg_restore prints is classified: fatal, or known-harmless (a setting an older
server does not know, ownership of a role that does not exist here, the comment on plpgsql
that only its owner may set). One fatal message fails the restore; harmless ones are kept
as evidence. Nothing unknown is ever taken as harmless.
"""

from __future__ import annotations

import contextlib
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
                              "summary of the errors listed above (each classified on its own)", toc)
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
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.target.child_env(),
            start_new_session=True, text=True, errors="replace",
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


def _drain(proc: subprocess.Popen[str], lines: list[str], on_line: Callable[[str], None] | None) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
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
                     "STATISTICS", "INDEX ATTACH", "RULE")


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
    for desc in sorted((*_TABLE_SCOPED, *_TABLE_SQL_SCOPED, "SCHEMA", "EXTENSION",
                        "MATERIALIZED VIEW", "MATERIALIZED VIEW DATA", "VIEW", "FUNCTION",
                        "TYPE", "DOMAIN", "LARGE OBJECT", "BLOB", "BLOBS", "ACL", "SEQUENCE"),
                       key=len, reverse=True):
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
            [str(program.path), "--schema-only", f"--use-list={list_path}", "--file=-", str(archive)],
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


def select_table_entries(program: PgProgram, archive: Path,
                         tables: set[tuple[str, str]]) -> list[str]:
    """TOC lines restoring the given tables with their data, indexes, constraints, defaults,
    triggers and owned sequences, and nothing else."""
    entries = [e for e in (parse_toc_line(x) for x in archive_toc(program, archive)) if e]
    chosen: list[TocEntry] = []
    maybe: list[TocEntry] = []
    for e in entries:
        first = e.tag.split(" ", 1)[0] if e.tag else ""
        if e.desc in _TABLE_SCOPED and (e.schema, first) in tables:
            chosen.append(e)
        elif e.desc in _TABLE_SQL_SCOPED:
            maybe.append(e)
    names: list[str] = []
    for schema, name in tables:
        for q_schema in {quote_ident_like_pg_dump(schema), f'"{schema}"'}:
            for q_name in {quote_ident_like_pg_dump(name), f'"{name}"'}:
                names.append(f"{q_schema}.{q_name}")
    pattern = re.compile(r"(?<![\w\"])(" + "|".join(re.escape(n) for n in names) + r")(?![\w\"])")
    bodies = entry_sql(program, archive, [e for e in maybe if e.desc != "SEQUENCE SET"])
    sequences = set()
    for e in maybe:
        body = bodies.get(e.dump_id, "")
        if e.desc != "SEQUENCE SET" and pattern.search(body):
            chosen.append(e)
            if e.desc in ("SEQUENCE", "SEQUENCE OWNED BY"):
                sequences.add((e.schema, e.tag.split(" ", 1)[0]))
    for e in maybe:
        if e.desc == "SEQUENCE" and (e.schema, e.tag.split(" ", 1)[0]) in sequences:
            chosen.append(e)
        if e.desc == "SEQUENCE SET" and (e.schema, e.tag.split(" ", 1)[0]) in sequences:
            chosen.append(e)
    keep = {e.dump_id for e in chosen}
    return [e.line for e in entries if e.dump_id in keep]
