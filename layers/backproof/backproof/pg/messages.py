"""Every message pg_restore prints, classified: fatal, or known-harmless with its reason.

Rules are data: each names the error and the failing command it must match and why it is
harmless. One fatal message fails the restore; harmless ones are kept as evidence. Nothing
unknown is ever taken as harmless.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..model.report import RestoreMessage

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
    toc = next((c[len(_PREFIX) :] for c in context if "TOC entry" in c), "")
    if _INFO.match(head):
        return RestoreMessage(text, "info", False, "progress information", toc)
    if head.startswith("pg_restore: warning: errors ignored on restore:"):
        return RestoreMessage(
            text,
            "warning",
            False,
            "summary of the errors listed above (each classified on its own)",
            toc,
        )
    severity = "warning" if head.startswith("pg_restore: warning:") else "error"
    command = body.split("Command was:", 1)[1] if "Command was:" in body else ""
    for rule in HARMLESS_RULES:
        if rule.matches(body, command.strip()):
            return RestoreMessage(text, severity, False, rule.reason, toc)
    return RestoreMessage(text, severity, True, "not a known-harmless message", toc)


def classify_pg_restore_output(output: str) -> list[RestoreMessage]:
    """Every message pg_restore printed, each classified fatal or known-harmless."""
    return [classify_message(ctx, lines) for ctx, lines in _split_messages(output)]
