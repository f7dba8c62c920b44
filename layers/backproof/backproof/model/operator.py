"""The operator's own checks: SQL assertions and freshness limits, parsed from flags or a file.

Pure parsing; jobs/checks.py runs them against a restored database.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from ..errors import BadInput
from .manifest import Manifest

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.I)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Assertion:
    """SQL that must return a single true value."""

    sql: str
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.sql


@dataclass(frozen=True)
class Freshness:
    """The newest value of `column` must be no older than `max_age` at the snapshot time."""

    table: str
    column: str
    max_age: timedelta
    schema: str | None = None  # None: resolved against the manifest's tables
    spec: str = ""

    @property
    def label(self) -> str:
        return self.spec or f"{self.table}.{self.column}"


@dataclass
class OperatorChecks:
    assertions: list[Assertion] = field(default_factory=list)
    freshness: list[Freshness] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.assertions or self.freshness)

    def extend(self, other: OperatorChecks) -> OperatorChecks:
        return OperatorChecks(self.assertions + other.assertions, self.freshness + other.freshness)

    @classmethod
    def from_cli(
        cls, asserts: Iterable[str] = (), fresh: Iterable[str] = (), checks_file: str | None = None
    ) -> OperatorChecks:
        checks = cls([Assertion(a) for a in asserts], [parse_freshness(f) for f in fresh])
        if checks_file:
            checks = load_checks_file(Path(checks_file)).extend(checks)
        return checks


def parse_duration(text: str) -> timedelta:
    """`26h`, `90m`, `1d12h`, `2w` -> timedelta; BadInput on anything else."""
    cleaned = text.strip().replace(" ", "")
    parts = _DURATION.findall(cleaned)
    if not parts or "".join(f"{n}{u}" for n, u in parts).lower() != cleaned.lower():
        raise BadInput(f"cannot read duration {text!r}; use e.g. 26h, 90m, 1d12h, 2w")
    delta = timedelta()
    for number, unit in parts:
        delta += timedelta(**{_UNITS[unit.lower()]: float(number)})
    if delta <= timedelta():
        raise BadInput(f"duration {text!r} must be positive")
    return delta


def split_identifier_path(text: str) -> list[str]:
    """Split `schema."My.Table".col` on dots outside double quotes; quotes keep case."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            if quoted and i + 1 < len(text) and text[i + 1] == '"':
                current.append('"')
                i += 1
            else:
                quoted = not quoted
        elif ch == "." and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    if quoted:
        raise BadInput(f"unbalanced double quote in {text!r}")
    parts.append("".join(current))
    if any(not p for p in parts):
        raise BadInput(f"empty name in {text!r}")
    return parts


def parse_freshness(spec: str) -> Freshness:
    """`orders.created_at=26h` or `sales.orders.created_at=1d`."""
    target, sep, age = spec.rpartition("=")
    if not sep or not target or not age:
        raise BadInput(f"--fresh wants TABLE.COLUMN=AGE (e.g. orders.created_at=26h), got {spec!r}")
    names = split_identifier_path(target)
    if len(names) == 2:
        return Freshness(names[0], names[1], parse_duration(age), None, spec)
    if len(names) == 3:
        return Freshness(names[1], names[2], parse_duration(age), names[0], spec)
    raise BadInput(f"--fresh wants [SCHEMA.]TABLE.COLUMN=AGE, got {spec!r}")


def load_checks_file(path: Path) -> OperatorChecks:
    """TOML or JSON: `assert = [{sql, name}]` (or plain strings), `fresh = ["t.c=26h", …]`."""
    try:
        raw = path.read_text()
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw)
    except (OSError, ValueError) as exc:
        raise BadInput(f"cannot read checks file {path}: {exc}") from exc
    checks = OperatorChecks()
    for item in data.get("assert", []):
        if isinstance(item, str):
            checks.assertions.append(Assertion(item))
        elif isinstance(item, dict) and isinstance(item.get("sql"), str):
            checks.assertions.append(Assertion(item["sql"], str(item.get("name", ""))))
        else:
            raise BadInput(f"{path}: each assert needs a 'sql' string, got {item!r}")
    for item in data.get("fresh", []):
        if isinstance(item, str):
            checks.freshness.append(parse_freshness(item))
        elif isinstance(item, dict) and "column" in item and "max_age" in item:
            checks.freshness.append(parse_freshness(f"{item['column']}={item['max_age']}"))
        else:
            raise BadInput(f"{path}: each fresh entry is 'table.col=AGE' or {{column, max_age}}")
    return checks


def resolve_table(manifest: Manifest, table: str, schema: str | None) -> tuple[str, str] | None:
    """(schema, name) of the manifest's table `table` (in `schema`, or any schema when None:
    unquoted names fold to lower case, and `public` wins a tie); None if absent or ambiguous."""
    matches = [
        (t.schema, t.name)
        for t in manifest.inventory.tables
        if t.name == table and (schema is None or t.schema == schema)
    ]
    if not matches and schema is None:  # unquoted names fold to lower case, as in SQL
        matches = [(t.schema, t.name) for t in manifest.inventory.tables if t.name == table.lower()]
    if len(matches) > 1:
        matches = [m for m in matches if m[0] == "public"] or matches
    return matches[0] if len(matches) == 1 else None
