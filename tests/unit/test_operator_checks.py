"""Operator checks from the command line and from a checks file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from backproof.errors import BadInput
from backproof.model.operator import (
    OperatorChecks,
    load_checks_file,
    parse_duration,
    parse_freshness,
    split_identifier_path,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("26h", timedelta(hours=26)),
        ("90m", timedelta(minutes=90)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2w", timedelta(weeks=2)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "26", "h", "26x", "0h", "-1h", "1h;DROP"])
def test_bad_durations_are_bad_input(text: str) -> None:
    with pytest.raises(BadInput):
        parse_duration(text)


def test_freshness_specs_keep_quoted_names_intact() -> None:
    simple = parse_freshness("orders.created_at=26h")
    assert (simple.schema, simple.table, simple.column) == (None, "orders", "created_at")
    quoted = parse_freshness('"Sales"."Order.Items"."Created ""At"""=1d')
    assert (quoted.schema, quoted.table, quoted.column) == ("Sales", "Order.Items", 'Created "At"')
    assert quoted.max_age == timedelta(days=1)
    assert split_identifier_path('a."b.c".d') == ["a", "b.c", "d"]


@pytest.mark.parametrize(
    "spec", ["orders=26h", "a.b.c.d=1h", "orders.created_at", '"x.y=1h', "orders..x=1h"]
)
def test_malformed_freshness_is_bad_input(spec: str) -> None:
    with pytest.raises(BadInput):
        parse_freshness(spec)


def test_checks_file_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "checks.toml"
    toml.write_text(
        'assert = ["SELECT true", {sql = "SELECT 1 = 1", name = "one"}]\n'
        'fresh = ["orders.created_at=26h", {column = "s.t.c", max_age = "2d"}]\n'
    )
    checks = load_checks_file(toml)
    assert [a.label for a in checks.assertions] == ["SELECT true", "one"]
    assert [f.label for f in checks.freshness] == ["orders.created_at=26h", "s.t.c=2d"]
    js = tmp_path / "checks.json"
    js.write_text('{"assert": [{"sql": "SELECT false"}]}')
    both = OperatorChecks.from_cli(["SELECT 2 > 1"], ["x.y=1h"], str(js))
    assert [a.sql for a in both.assertions] == ["SELECT false", "SELECT 2 > 1"]
    assert len(both.freshness) == 1 and bool(both)
    assert not OperatorChecks()


def test_unreadable_or_malformed_checks_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        load_checks_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('assert = [{name = "no sql"}]\n')
    with pytest.raises(BadInput):
        load_checks_file(bad)
