"""Every message pg_restore prints, classified: fatal, or known-harmless with its reason.

Rules are data: each names the error and the failing command it must match and why it is
harmless. One fatal message fails the restore; harmless ones are kept as evidence. Nothing
unknown is ever taken as harmless. Fatal messages about objects only a superuser can create say
so in their reason (a non-superuser restore, as on RDS, fails on them rightly).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..model.report import RestoreMessage

_PREFIX = "pg_restore: "
_CONTEXT = re.compile(r"^pg_restore: (while PROCESSING TOC:|from TOC entry .*)$")
# Parallel workers write "pg_restore:", " ", "error: " and the message as separate writes to
# one stderr, so messages printed at the same instant (every worker failing the same SET as it
# connects) interleave: "pg_restore:pg_restore:  error: error: could not...", and a message
# left without its prefix. Each line is put back to one prefix and one level before grouping.
_INTERLEAVED = re.compile(r"^((?:pg_restore: ?)+)\s*((?:(?:error|warning): *)*)(.*)$")
_BARE = re.compile(r"^\s*((?:error|warning): |could not execute query: )")
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
        "pg_dump 17+ turns transaction_timeout off (0) for the restore session; an older "
        "server has no such timeout, so the session behaves the same",
        re.compile(r'unrecognized configuration parameter "transaction_timeout"'),
        re.compile(r"^\s*SET transaction_timeout = 0;", re.I),
    ),
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
        "the public schema is the server's own: up to PostgreSQL 14 its bootstrap superuser owns "
        "it (rdsadmin on RDS), which a restore that is not a superuser cannot take it from; "
        "its contents are unaffected",
        re.compile(r"must be owner of schema public"),
        re.compile(r"^\s*ALTER SCHEMA public OWNER TO ", re.I),
    ),
    HarmlessRule(
        "the public schema exists in every new database",
        re.compile(r'schema "public" already exists'),
        re.compile(r"^\s*CREATE SCHEMA public", re.I),
    ),
    HarmlessRule(
        "--clean drops a partition's inherited constraint before its table; dropping the table "
        "removes it anyway, and a table that were not dropped would fail its re-creation",
        re.compile(r'cannot drop inherited constraint "[^"]+" of relation "[^"]+"'),
        re.compile(r"^\s*ALTER TABLE (IF EXISTS )?ONLY \S+.* DROP CONSTRAINT ", re.I),
    ),
)

# Only where the operator chose to restore without ownership and grants (`--no-owners`):
# then a missing role is what was asked for. Everywhere else (a verification above all) the
# roles are created first, and a missing one means owners or grants were not restored.
OWNERSHIP_SKIPPED_RULES: tuple[HarmlessRule, ...] = (
    *HARMLESS_RULES,
    HarmlessRule(
        "ownership and grants name a role that does not exist on this server; the operator "
        "chose to restore without ownership and grants",
        re.compile(r'role "[^"]+" does not exist'),
        re.compile(r"(\bOWNER TO\b|^\s*(GRANT|REVOKE|ALTER DEFAULT PRIVILEGES)\b)", re.I),
    ),
    HarmlessRule(
        "ownership cannot be given to a role this login is not a member of; the operator chose "
        "to restore without ownership and grants",
        re.compile(r'must be (member of role|able to SET ROLE) "[^"]+"'),  # PG 15- | 16+
        re.compile(r"\bOWNER TO\b", re.I),
    ),
)

# Fatal, and explained: objects only a superuser can create. RDS's master user cannot create
# them either, so a verification restoring as such a role (the default) must fail on them.
SUPERUSER_ONLY = "needs a superuser, which RDS's master user is not"
SUPERUSER_ONLY_RULES: tuple[HarmlessRule, ...] = (
    HarmlessRule(
        f"a function in an untrusted language (C, internal) {SUPERUSER_ONLY}",
        re.compile(r"permission denied for language (c|internal)\b"),
    ),
    HarmlessRule(
        f"changing a built-in type (owned by the bootstrap superuser, rdsadmin on RDS) "
        f"{SUPERUSER_ONLY}",
        re.compile(r"must be owner of type [^.\n]+$", re.M),
    ),
    HarmlessRule(
        f"a grant on a system catalog (owned by the bootstrap superuser, rdsadmin on RDS) "
        f"{SUPERUSER_ONLY}",
        re.compile(r'permission denied for (column "[^"]+" of )?relation "pg_\w+"'),
        re.compile(r"^\s*(GRANT|REVOKE)\b.*\bON TABLE pg_catalog\.", re.I),
    ),
    HarmlessRule(
        f"an object only a superuser may create or change {SUPERUSER_ONLY}",
        re.compile(
            r"(must be superuser\b|Only roles with the SUPERUSER attribute may|"
            r"aggregate transition data type cannot be internal)",
            re.I,
        ),
    ),
)


def _one_prefix(line: str) -> str:
    match = _INTERLEAVED.match(line)
    if match:
        level = match[2].split(":", 1)[0].strip()
        return _PREFIX + (f"{level}: " if level else "") + match[3].lstrip()
    bare = _BARE.match(line)
    if bare:  # a message whose prefix another process's line took
        rest = line.strip()
        return _PREFIX + (rest if bare[1] != "could not execute query: " else "error: " + rest)
    return line


def _split_messages(output: str) -> list[tuple[list[str], list[str]]]:
    """Group lines into (context lines, message lines). Continuation lines (DETAIL, HINT,
    'Command was:', the statement) do not start with 'pg_restore: '."""
    groups: list[tuple[list[str], list[str]]] = []
    context: list[str] = []
    for line in map(_one_prefix, output.splitlines()):
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


def classify_message(
    context: list[str], lines: list[str], rules: tuple[HarmlessRule, ...] = HARMLESS_RULES
) -> RestoreMessage:
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
    for rule in rules:
        if rule.matches(body, command.strip()):
            return RestoreMessage(text, severity, False, rule.reason, toc)
    for rule in SUPERUSER_ONLY_RULES:
        if rule.matches(body, command.strip()):
            return RestoreMessage(text, severity, True, rule.reason, toc)
    return RestoreMessage(text, severity, True, "not a known-harmless message", toc)


def message_subject(message: RestoreMessage) -> str:
    """What a message is about: its TOC entry, else the first line of the failing command."""
    if message.toc_entry:
        return message.toc_entry
    _, _, command = message.text.partition("Command was:")
    return command.strip().splitlines()[0][:160] if command.strip() else "pg_restore"


def error_line(message: RestoreMessage) -> str:
    """The server's error (or pg_restore's own line) without the prefixes."""
    lines = message.text.splitlines() or [""]
    line = next((x for x in lines if "ERROR:" in x), lines[0])
    return line.split("ERROR:", 1)[-1].removeprefix(_PREFIX).strip()[:200]


def classify_pg_restore_output(
    output: str, rules: tuple[HarmlessRule, ...] = HARMLESS_RULES
) -> list[RestoreMessage]:
    """Every message pg_restore printed, each classified fatal or known-harmless by `rules`
    (HARMLESS_RULES; OWNERSHIP_SKIPPED_RULES where the operator chose --no-owners)."""
    return [classify_message(ctx, lines, rules) for ctx, lines in _split_messages(output)]
