"""Notification texts a person can act on: which database, what happened, the error or the
failed checks, the backup, a console link to the execution, and what to do next.

Pure formatting over what a state machine hands the notify function: the event name, the
execution ARN, the error (or result) and the execution's state at that point.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# Per event: the headline (formatted with database, backup, tier, instance) and what to do.
EVENTS: dict[str, tuple[str, str]] = {
    "backup-failed": (
        "backup of {database} ({tier}) failed",
        "Open the execution: its failed state names the cause. SourceUnavailable or BadInput: "
        "check the connection secret, the security group and the network. A backup that failed "
        "is not retried until the next schedule; start the backup workflow to take one now.",
    ),
    "verification-failed": (
        "verification of backup {backup} of {database} failed",
        "Read the failed checks (expected and found) and the evidence beside the backup. A "
        "corrupt or tampered archive means this backup is unusable: take a new backup now.",
    ),
    "restore-failed": (
        "operator restore of {database} failed",
        "The detail says where. A new instance created for it was deleted; an existing target "
        "had a safety backup taken first (its id is in the execution's task output).",
    ),
    "instance-not-deleted": (
        "temporary instance {instance} of {database} was not deleted",
        "The janitor deletes it at its expiry (26 h). Delete it by hand sooner to stop its cost; "
        "it holds a copy of the data.",
    ),
    "instance-not-handed-over": (
        "restored instance {instance} of {database} is still tagged for deletion",
        "The restore succeeded. Remove the tag backproof:ephemeral from the instance, or the "
        "janitor deletes it at its expiry.",
    ),
    "janitor-failed": (
        "the janitor failed",
        "Check the janitor function's log. Until it runs, expired temporary instances are not "
        "deleted and stale verification slots are not freed.",
    ),
    "instances-leaked": (
        "leaked temporary instances deleted",
        "A verify or restore execution did not clean up (aborted, or deletion kept failing). "
        "Find the execution named in the instances' tags and see why it stopped.",
    ),
    "native-verification-failed": (
        "an RDS snapshot or point-in-time restore of {database} was not proved",
        "Read the cause: a rejected request (no rds_instance_id, a time outside the restore "
        "window, no snapshot) names what to fix; a failed check means that way back does not "
        "hold what the checks expect. The evidence is under snapshots/ or point-in-time/ in the "
        "store; the temporary instance was deleted.",
    ),
    "verified": (
        "backup {backup} of {database} verified",
        "Nothing: the backup was restored and matched its manifest.",
    ),
}
# SNS: a subject is at most 100 printable ASCII characters, on one line.
SUBJECT_LIMIT = 100
DETAIL_LIMIT = 4000
CHECKS_SHOWN = 10
BACKUP_ID = re.compile(r"\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}")


@dataclass(frozen=True)
class Message:
    event: str
    subject: str
    text: str
    database: str | None
    backup_id: str | None
    console_url: str | None


def console_url(execution_arn: str) -> str | None:
    """The Step Functions console page of an execution (region read from its ARN)."""
    parts = execution_arn.split(":")
    if len(parts) < 8 or parts[2] != "states":
        return None
    region = parts[3]
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{execution_arn}"
    )


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _first(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip():
            return value
    return None


def _cause(detail: dict[str, Any]) -> Any:
    """The error's cause, parsed when it is JSON (a task's report, a Lambda error)."""
    cause = detail.get("Cause") if isinstance(detail, dict) else None
    if isinstance(cause, str):
        try:
            return json.loads(cause)
        except ValueError:
            return cause
    return cause


def _check_line(c: dict[str, Any]) -> str:
    line = f"{c.get('check')} {c.get('subject') or ''}".strip()
    if "expected" in c or "found" in c:
        line += f": expected {c.get('expected')!r}, found {c.get('found')!r}"
    if c.get("detail"):
        line += f" ({c['detail']})"
    return line


def _explain(detail: Any) -> list[str]:
    """Readable lines for the error (or result) a state machine passed."""
    if not isinstance(detail, dict):
        return [] if detail is None else [str(detail)[:DETAIL_LIMIT]]
    lines = []
    if detail.get("Error"):
        lines.append(f"Error:         {detail['Error']}")
    cause = _cause(detail)
    if isinstance(cause, dict):
        message = _first(cause.get("errorMessage"), cause.get("message"), cause.get("error"))
        if message and message != detail.get("Error"):
            lines.append(f"Cause:         {message[:DETAIL_LIMIT]}")
        failed = [c for c in cause.get("failed_checks") or [] if isinstance(c, dict)]
        if failed:
            lines.append(f"Failed checks: {len(failed)}")
            lines += [f"  - {_check_line(c)}" for c in failed[:CHECKS_SHOWN]]
            if len(failed) > CHECKS_SHOWN:
                lines.append(f"  … and {len(failed) - CHECKS_SHOWN} more in the evidence")
        if cause.get("report_key"):
            lines.append(f"Evidence:      {cause['report_key']}")
    elif cause:
        lines.append(f"Cause:         {str(cause)[:DETAIL_LIMIT]}")
    if not lines:
        lines.append(f"Detail:        {json.dumps(detail, default=str)[:DETAIL_LIMIT]}")
    return lines


def _backup_id(state: dict[str, Any], detail: Any) -> str | None:
    """The backup concerned: where the workflow keeps it, else named in the error (an
    integrity failure says `backup <id> failed ...` before the state holds the id), else what
    the request asked for (`latest`)."""
    cause = _cause(detail) if isinstance(detail, dict) else None
    candidates = [
        _dig(cause, "backup_id"),
        _dig(detail, "backup_id"),
        _dig(state, "backup", "backup_id"),
        _dig(state, "plan", "backup", "backup_id"),
        _dig(state, "request", "backup_id"),
    ]
    named = BACKUP_ID.search(json.dumps(cause, default=str)) if cause else None
    return _first(
        *[c for c in candidates if isinstance(c, str) and BACKUP_ID.fullmatch(c)],
        named[0] if named else None,
        *candidates,
        _dig(state, "backup_id"),
    )


def _subject(text: str) -> str:
    ascii_only = re.sub(r"[^\x20-\x7e]", "?", " ".join(text.split()))
    if len(ascii_only) <= SUBJECT_LIMIT:
        return ascii_only
    return ascii_only[: SUBJECT_LIMIT - 3] + "..."


def build(
    event: str,
    execution: str,
    detail: Any,
    state: dict[str, Any],
    deployment: str,
) -> Message:
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}; one of {', '.join(EVENTS)}")
    headline, action = EVENTS[event]
    database = _first(
        state.get("database"), _dig(state, "plan", "database"), _dig(detail, "database")
    )
    backup_id = _backup_id(state, detail)
    what = headline.format(
        database=database or "(no database)",
        backup=backup_id or "(not chosen yet)",
        tier=_first(state.get("tier"), _dig(detail, "tier")) or "-",
        instance=_first(_dig(state, "instance", "instance_id")) or "(unknown)",
    )
    link = console_url(execution)
    lines = [
        f"backproof {deployment}: {what}",
        "",
        f"Database:      {database or '-'}",
        f"Backup:        {backup_id or '-'}",
    ]
    instance = _dig(state, "instance", "instance_id")
    if instance:
        lines.append(f"Instance:      {instance}")
    if event == "instances-leaked":
        lines.append(f"Deleted:       {', '.join(map(str, _dig(detail, 'deleted') or [])) or '-'}")
    elif event == "verified":
        seconds = _dig(detail, "timings", "restore_seconds")
        if seconds is not None:
            lines.append(f"Restore:       {float(seconds):.1f} s")
    else:
        lines += _explain(detail)
    lines += [f"Execution:     {link or execution}", f"What to do:    {action}"]
    return Message(
        event=event,
        subject=_subject(f"backproof {deployment}: {what}"),
        text="\n".join(lines),
        database=database,
        backup_id=backup_id,
        console_url=link,
    )
