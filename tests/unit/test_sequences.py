"""Sequence bounds and their comparison: what a backup records about a sequence that other
sessions keep moving, and when a restored sequence is wrong."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backproof.model.checks import FAIL, PASS, SKIP, WARN
from backproof.model.manifest import Inventory
from backproof.model.sequences import (
    CYCLES,
    UNREADABLE,
    SequenceOwner,
    SequenceState,
    behind_in_source,
    check_ahead_of_column,
    compare_sequence,
    next_value,
    record_bounds,
)

OWNER = SequenceOwner("public", "orders", "id", "a")


def seq(
    position: int | None,
    *,
    increment: int = 1,
    cycle: bool = False,
    name: str = "s",
    owned_by: SequenceOwner | None = None,
) -> SequenceState:
    return SequenceState(
        "public",
        name,
        last_value=None if position is None else position - increment,
        next_value=position,
        increment=increment,
        min_value=1 if increment > 0 else -(2**63),
        max_value=2**63 - 1 if increment > 0 else -1,
        cycle=cycle,
        owned_by=owned_by,
    )


@pytest.mark.parametrize(
    ("last", "called", "increment", "expected"),
    [
        (10, True, 1, 11),
        (10, False, 1, 10),
        (10, True, 5, 15),
        (-10, True, -1, -11),
        (1, False, -1, 1),
    ],
)
def test_next_value_is_what_nextval_returns(
    last: int, called: bool, increment: int, expected: int
) -> None:
    assert next_value(last, called, increment) == expected


def test_the_bound_is_the_position_before_the_dump() -> None:
    # Given a sequence at 101 before pg_dump starts and at 180 once it is done
    before, after = [seq(101)], [seq(180)]
    # Then the bound is 101, whatever pg_dump saw in between
    [recorded] = record_bounds(before, after)
    assert recorded.bound == 101 and recorded.unbounded == ""
    assert compare_sequence(recorded, seq(101))[0].verdict == PASS
    assert compare_sequence(recorded, seq(150))[0].verdict == PASS
    assert compare_sequence(recorded, seq(100))[0].verdict == FAIL


def test_descending_sequences_are_bounded_from_above() -> None:
    [recorded] = record_bounds([seq(-50, increment=-1)], [seq(-90, increment=-1)])
    assert recorded.bound == -50
    assert compare_sequence(recorded, seq(-70, increment=-1))[0].verdict == PASS
    assert compare_sequence(recorded, seq(-49, increment=-1))[0].verdict == FAIL


def test_cycling_unreadable_and_rewound_sequences_have_no_bound_and_never_fail() -> None:
    rewound = seq(500, name="rewound")
    cycling = seq(5, cycle=True, name="cycling")
    hidden = seq(None, name="hidden")
    after = [seq(3, name="rewound"), seq(2, cycle=True, name="cycling")]
    recorded = {s.name: s for s in record_bounds([rewound, cycling, hidden], after)}
    assert recorded["cycling"].unbounded == CYCLES
    assert recorded["hidden"].unbounded == UNREADABLE
    assert recorded["rewound"].unbounded.startswith(
        "went backwards while the dump ran (500, then 3)"
    )
    for name, state in recorded.items():
        assert state.bound is None
        [result] = compare_sequence(state, seq(1, name=name))
        assert result.verdict == SKIP and "no bound recorded" in result.detail


def test_a_sequence_that_was_not_read_again_keeps_its_bound() -> None:
    [recorded] = record_bounds([seq(7)], None)
    assert recorded.bound == 7


def test_is_called_false_counts_the_value_itself() -> None:
    # Given setval(s, 10, false): nextval returns 10, pg_sequence_last_value says NULL
    before = SequenceState("public", "s", None, next_value=10, increment=1, cycle=False)
    [recorded] = record_bounds([before], [before])
    assert recorded.bound == 10
    restored = SequenceState("public", "s", None, next_value=10, increment=1, cycle=False)
    assert compare_sequence(recorded, restored)[0].verdict == PASS


def test_a_missing_sequence_fails() -> None:
    [recorded] = record_bounds([seq(5)], None)
    [result] = compare_sequence(recorded, None)
    assert result.verdict == FAIL and result.detail == "missing"


def test_a_sequence_restored_without_its_column_fails_unless_the_restore_was_selective() -> None:
    [recorded] = record_bounds([seq(5, owned_by=OWNER)], None)
    assert [r.verdict for r in compare_sequence(recorded, seq(5, owned_by=OWNER))] == [PASS]
    results = compare_sequence(recorded, seq(5))
    assert [(r.check, r.verdict) for r in results] == [("sequence", PASS), ("sequence_owner", FAIL)]
    selective = compare_sequence(recorded, seq(5), selective=True)
    assert selective[1].verdict == WARN


def test_old_manifests_compare_last_value_as_before() -> None:
    # Given a sequence as a format 1 manifest recorded it: only pg_sequence_last_value
    inventory = Inventory.from_dict(
        {"sequences": [{"schema": "public", "name": "s", "last_value": 41}]}
    )
    [old] = inventory.sequences
    assert old.next_value is None and old.bound is None and old.owned_by is None
    assert not old.has_bounds
    # Then the restored last_value must be at least that, as it always had to be
    [ok] = compare_sequence(old, replace(seq(42), last_value=41))
    [behind] = compare_sequence(old, replace(seq(41), last_value=40))
    assert ok.verdict == PASS and ok.expected == ">= 41"
    assert behind.verdict == FAIL
    unused = SequenceState("public", "s", None)
    assert compare_sequence(unused, replace(seq(1), last_value=None))[0].verdict == PASS


def test_sequence_states_survive_the_manifest_round_trip() -> None:
    [recorded] = record_bounds([seq(9, owned_by=OWNER)], None)
    again = Inventory.from_dict(Inventory(sequences=[recorded]).to_dict()).sequences
    assert again == [recorded]


@pytest.mark.parametrize(
    ("position", "increment", "extreme", "cycle", "verdict"),
    [
        (101, 1, 100, False, PASS),  # nextval gives 101, the column's max is 100
        (100, 1, 100, False, FAIL),  # nextval gives 100 again: a collision
        (50, 1, 100, False, FAIL),  # setval backwards after inserts
        (50, 1, 100, True, WARN),  # a cycling sequence: it wraps by design
        (-101, -1, -100, False, PASS),  # descending: below the column's min
        (-100, -1, -100, False, FAIL),
        (5, 1, None, False, PASS),  # empty column
    ],
)
def test_an_owned_sequence_must_be_ahead_of_its_column(
    position: int, increment: int, extreme: int | None, cycle: bool, verdict: str
) -> None:
    restored = seq(position, increment=increment, cycle=cycle, owned_by=OWNER)
    result = check_ahead_of_column(restored, extreme)
    assert result.verdict == verdict, result
    if verdict == FAIL:
        assert "collides with existing rows of public.orders.id" in result.detail


def test_a_sequence_behind_its_column_fails_unless_the_source_was_behind_too() -> None:
    owner = SequenceOwner("public", "t", "id", "a")
    restored = SequenceState("public", "t_id_seq", 40, next_value=41, increment=1, owned_by=owner)
    # the restore broke it (or an older manifest that cannot say): a defect
    assert check_ahead_of_column(restored, 100).verdict == FAIL
    assert check_ahead_of_column(restored, 100, False).verdict == FAIL
    # the source was already behind: reproduced faithfully, a warning
    assert check_ahead_of_column(restored, 100, True).verdict == WARN
    # measured on the source: behind when the column reaches the next value
    [marked] = behind_in_source([restored], {("public", "t_id_seq"): 100})
    assert marked.behind_column_in_source is True
    [fine] = behind_in_source([restored], {("public", "t_id_seq"): 40})
    assert fine.behind_column_in_source is False
    [unknown] = behind_in_source([restored], {})
    assert unknown.behind_column_in_source is None
