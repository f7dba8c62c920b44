"""An archive's table of contents: reading it (`pg_restore --list`), the SQL of chosen entries,
and the selection of entries that restores given tables with everything that belongs to them.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput, RestoreFailed
from .programs import PgProgram

_TOC_LINE = re.compile(r"^(\d+); (\d+) (\d+) (.+)$")
# Object types whose TOC tag is "<schema> <table> ..." for the table they belong to.
_TABLE_SCOPED = (
    "TABLE",
    "TABLE DATA",
    "DEFAULT",
    "CONSTRAINT",
    "FK CONSTRAINT",
    "TRIGGER",
    "POLICY",
    "ROW SECURITY",
    "TABLE ATTACH",
)
_TABLE_SQL_SCOPED = (
    "INDEX",
    "SEQUENCE",
    "SEQUENCE OWNED BY",
    "SEQUENCE SET",
    "COMMENT",
    "STATISTICS",
    "RULE",
)


# Longest first, so "TABLE DATA" is not read as "TABLE" with schema "DATA".
_KNOWN_DESCS = sorted(
    (
        *_TABLE_SCOPED,
        *_TABLE_SQL_SCOPED,
        "SCHEMA",
        "EXTENSION",
        "MATERIALIZED VIEW",
        "MATERIALIZED VIEW DATA",
        "VIEW",
        "FUNCTION",
        "INDEX ATTACH",
        "TYPE",
        "DOMAIN",
        "LARGE OBJECT",
        "BLOB",
        "BLOBS",
        "ACL",
        "SEQUENCE",
    ),
    key=len,
    reverse=True,
)


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
            fields = rest[len(desc) + 1 :].split(" ")
            return TocEntry(
                line,
                int(match[1]),
                desc,
                fields[0] if fields else "",
                " ".join(fields[1:-1]) if len(fields) > 2 else "",
            )
    parts = rest.split(" ")
    return TocEntry(line, int(match[1]), parts[0], "", " ".join(parts[1:]))


class PgRestoreList:
    """`pg_restore --list ARCHIVE`: the archive's TOC, one line per entry (no database)."""

    def __init__(self, program: PgProgram, archive: Path) -> None:
        self.argv = [str(program.path), "--list", str(archive)]

    def run(self) -> list[str]:
        result = subprocess.run(self.argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RestoreFailed(f"pg_restore cannot read the archive: {result.stderr.strip()}")
        return result.stdout.splitlines()


class PgRestoreScript:
    """`pg_restore --schema-only --use-list=LIST --file=-`: the SQL of the listed entries."""

    def __init__(self, program: PgProgram, archive: Path, list_file: Path) -> None:
        self.argv = [
            str(program.path),
            "--schema-only",
            f"--use-list={list_file}",
            "--file=-",
            str(archive),
        ]

    def run(self) -> str:
        return subprocess.run(self.argv, capture_output=True, text=True, check=False).stdout


def archive_toc(program: PgProgram, archive: Path) -> list[str]:
    return PgRestoreList(program, archive).run()


def entry_sql(program: PgProgram, archive: Path, entries: Iterable[TocEntry]) -> dict[int, str]:
    """The SQL of the given TOC entries, by dump id, read from the archive (no database)."""
    wanted = list(entries)
    if not wanted:
        return {}
    with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as fh:
        fh.write("\n".join(e.line for e in wanted) + "\n")
        list_path = Path(fh.name)
    try:
        script = PgRestoreScript(program, archive, list_path).run()
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


def select_table_entries(
    program: PgProgram,
    archive: Path,
    tables: set[tuple[str, str]],
    present: set[tuple[str, str]] | None = None,
) -> list[str]:
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
    maybe = [
        e
        for e in entries
        if e.dump_id not in keep
        and (
            (e.desc in _TABLE_SQL_SCOPED and e.desc != "SEQUENCE SET") or e.desc == "FK CONSTRAINT"
        )
    ]
    pattern = _qualified_name_pattern(tables)
    sequences = set()
    absent = {
        e.dump_id
        for e in maybe
        if e.desc == "FK CONSTRAINT" and present is not None and _object_name(e) not in present
    }
    for dump_id, body in entry_sql(program, archive, maybe).items():
        if dump_id not in absent and pattern.search(body):
            keep.add(dump_id)
    for e in maybe:
        if e.dump_id in keep and e.desc in ("SEQUENCE", "SEQUENCE OWNED BY"):
            sequences.add(_object_name(e))
    keep |= {
        e.dump_id
        for e in entries
        if e.desc in ("SEQUENCE", "SEQUENCE SET") and _object_name(e) in sequences
    }
    # A partition's indexes (plain, or behind a constraint) are attached to the parent's index.
    indexes = {_object_name(e) for e in entries if e.dump_id in keep and e.desc == "INDEX"}
    indexes |= {
        (e.schema, e.tag.split(" ")[1])
        for e in entries
        if e.dump_id in keep and e.desc == "CONSTRAINT" and " " in e.tag
    }
    keep |= {e.dump_id for e in entries if e.desc == "INDEX ATTACH" and _object_name(e) in indexes}
    return [e.line for e in entries if e.dump_id in keep]


def expand_partitioned(
    program: PgProgram, archive: Path, names: list[tuple[str | None, str]]
) -> list[tuple[str, str]]:
    """Partitioned tables named with --table (the manifest lists only their partitions): each
    with every partition below it, read from the archive's TOC. BadInput if not there."""

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
            raise BadInput(
                f"table {shown!r} is not in the backup (or the name is ambiguous: add the schema)"
            )
        todo = [matches[0]]
        while todo:
            parent = todo.pop()
            if parent in chosen:
                continue
            chosen.append(parent)
            below = re.compile(
                r"ALTER TABLE ONLY "
                + _qualified_name_pattern({parent}).pattern
                + r" ATTACH PARTITION "
            )
            todo += [_object_name(e) for e in attach if below.search(bodies.get(e.dump_id, ""))]
    return chosen


def schemas_first(program: PgProgram, archive: Path, work: Path) -> tuple[Path, Path]:
    """Two --use-list files: the schemas with their grants, then everything else.

    Restoring owners as a role that is not a superuser (as on RDS), `ALTER ... OWNER TO`
    checks that the new owner may CREATE in the object's schema, and pg_restore grants on
    schemas only at its end: with the schemas' grants restored first, each object can go to
    the owner it had (if that owner could create in its schema on the source)."""
    entries = [e for e in (parse_toc_line(x) for x in archive_toc(program, archive)) if e]
    first = {
        e.dump_id
        for e in entries
        if e.desc == "SCHEMA" or (e.desc == "ACL" and e.tag.startswith("SCHEMA "))
    }
    lists = (work / "schemas.list", work / "rest.list")
    lists[0].write_text("".join(e.line + "\n" for e in entries if e.dump_id in first))
    lists[1].write_text("".join(e.line + "\n" for e in entries if e.dump_id not in first))
    return lists
