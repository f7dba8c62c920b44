"""What the manifest records about a sequence, and how a restored sequence is judged.

Sequences are not transactional: pg_dump reads each one's state at its own moment during the
dump, not in the snapshot. So the manifest does not record "the" value, which no one can
know, but a bound that pg_dump's reading must satisfy whatever other sessions do: the
position (the value the next `nextval` returns) read after the snapshot is exported and
before pg_dump starts. An ascending sequence only moves up unless someone moves it back, so
the restored position is at least that (at most, for a descending one). A cycling sequence,
or one that went backwards while the dump ran, has no such bound: that is recorded and
reported as a note, never a failure.

Whatever the bound, a sequence owned by a column (serial, OWNED BY, identity) must be ahead
of that column's values in the restored data, or new rows collide: a real defect.

Manifests written before bounds existed (format 1, early format 2) record only
`pg_sequence_last_value`; those are compared as they always were.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from .checks import FAIL, PASS, SKIP, WARN, CheckResult

CYCLES = "cycles: its value may wrap around while the dump runs"
UNREADABLE = "not readable by the backup's role"


@dataclass(frozen=True)
class SequenceOwner:
    """The column a sequence belongs to (pg_depend: 'a' serial or OWNED BY, 'i' identity)."""

    schema: str
    table: str
    column: str
    dependency: str  # "a" or "i"

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}.{self.column}"


@dataclass
class SequenceState:
    schema: str
    name: str
    last_value: int | None  # pg_sequence_last_value: None when never called (or unreadable)
    # Format 2 with bounds; None in older manifests.
    next_value: int | None = None  # what nextval returns next (last_value itself if not called)
    increment: int | None = None
    min_value: int | None = None
    max_value: int | None = None
    cycle: bool | None = None
    bound: int | None = None  # the restored next_value is >= this (<= if descending)
    unbounded: str = ""  # why there is no bound
    owned_by: SequenceOwner | None = None
    # Whether the source's own column was already at or beyond this sequence in the snapshot
    # (rows inserted with explicit values); None when not known (older manifests).
    behind_column_in_source: bool | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ascending(self) -> bool:
        return self.increment is None or self.increment > 0

    @property
    def has_bounds(self) -> bool:
        """False for manifests written before bounds were recorded."""
        return self.increment is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SequenceState:
        owner = data.get("owned_by")
        return cls(
            **{k: v for k, v in data.items() if k != "owned_by"},
            owned_by=SequenceOwner(**owner) if owner else None,
        )


def next_value(last_value: int, is_called: bool, increment: int) -> int:
    """The value the next nextval returns (beyond the limit if the sequence is exhausted)."""
    return last_value + increment if is_called else last_value


def _behind(value: int, reference: int, ascending: bool) -> bool:
    return value < reference if ascending else value > reference


def record_bounds(
    before: list[SequenceState], after: list[SequenceState] | None
) -> list[SequenceState]:
    """The states read before pg_dump started, each with its bound. `after` is a reading
    taken once pg_dump finished (None: none could be taken); a sequence whose position is
    then behind where it was before went backwards (setval, ALTER SEQUENCE RESTART) at some
    moment pg_dump may have seen, so it has no bound."""
    later = {(s.schema, s.name): s for s in after or []}
    bounded = []
    for seq in before:
        bound, why = None, ""
        end = later.get((seq.schema, seq.name))
        if seq.next_value is None:
            why = UNREADABLE
        elif seq.cycle:
            why = CYCLES
        elif (
            end
            and end.next_value is not None
            and _behind(end.next_value, seq.next_value, seq.ascending)
        ):
            why = (
                f"went backwards while the dump ran ({seq.next_value}, then {end.next_value}): "
                "setval or ALTER SEQUENCE RESTART"
            )
        else:
            bound = seq.next_value
        bounded.append(replace(seq, bound=bound, unbounded=why))
    return bounded


def compare_sequence(
    want: SequenceState, got: SequenceState | None, *, selective: bool = False
) -> list[CheckResult]:
    """The restored sequence against what the manifest recorded."""
    subject = want.qualified
    if got is None:
        return [CheckResult("sequence", subject, want.last_value, None, FAIL, "missing")]
    if not want.has_bounds:
        return [_compare_last_value(want, got)]
    results = [_compare_bound(want, got)]
    if want.owned_by != got.owned_by:
        results.append(
            CheckResult(
                "sequence_owner",
                subject,
                want.owned_by.qualified if want.owned_by else None,
                got.owned_by.qualified if got.owned_by else None,
                WARN if selective else FAIL,
                "the restored sequence belongs to another column than in the source",
            )
        )
    return results


def _compare_last_value(want: SequenceState, got: SequenceState) -> CheckResult:
    ok = want.last_value is None or (
        got.last_value is not None and got.last_value >= want.last_value
    )
    return CheckResult(
        "sequence",
        want.qualified,
        f">= {want.last_value}" if want.last_value is not None else "any",
        got.last_value,
        PASS if ok else FAIL,
        "" if ok else "sequence is behind its recorded value: new rows would collide",
    )


def _compare_bound(want: SequenceState, got: SequenceState) -> CheckResult:
    subject = want.qualified
    if want.bound is None:
        return CheckResult(
            "sequence", subject, "any", got.next_value, SKIP, f"no bound recorded: {want.unbounded}"
        )
    sign = ">=" if want.ascending else "<="
    expected = f"next value {sign} {want.bound}"
    if got.next_value is None:
        return CheckResult("sequence", subject, expected, None, FAIL, UNREADABLE)
    ok = not _behind(got.next_value, want.bound, want.ascending)
    return CheckResult(
        "sequence",
        subject,
        expected,
        got.next_value,
        PASS if ok else FAIL,
        ""
        if ok
        else "sequence is behind where it was when the dump started: pg_dump's value was lost",
    )


def behind_in_source(
    sequences: list[SequenceState], extremes: dict[tuple[str, str], int | None]
) -> list[SequenceState]:
    """The sequences with `behind_column_in_source` set from the source's column extremes read
    in the snapshot (`extremes`, as owned_column_extremes gives them); those not measured keep
    None."""
    marked = []
    for seq in sequences:
        key = (seq.schema, seq.name)
        if key not in extremes or seq.next_value is None:
            marked.append(seq)
            continue
        extreme = extremes[key]
        behind = extreme is not None and not _behind(extreme, seq.next_value, seq.ascending)
        marked.append(replace(seq, behind_column_in_source=behind))
    return marked


def check_ahead_of_column(
    seq: SequenceState, extreme: int | None, behind_in_source: bool | None = None
) -> CheckResult:
    """A restored sequence owned by a column must hand out values beyond the column's
    maximum (minimum, if descending): `extreme` is that, None for an empty column. When the
    source was behind its column too (`behind_in_source`), the restore faithfully reproduces
    the source's own problem: a warning, not a defect of the backup."""
    owner = seq.owned_by
    assert owner is not None
    word = "max" if seq.ascending else "min"
    sign = ">" if seq.ascending else "<"
    subject = seq.qualified
    if extreme is None:
        return CheckResult(
            "sequence_ahead_of_column", subject, "any", seq.next_value, PASS, "column is empty"
        )
    expected = f"next value {sign} {extreme} ({word} of {owner.qualified})"
    if seq.next_value is None:
        return CheckResult("sequence_ahead_of_column", subject, expected, None, SKIP, UNREADABLE)
    ok = _behind(extreme, seq.next_value, seq.ascending)
    if ok:
        return CheckResult("sequence_ahead_of_column", subject, expected, seq.next_value, PASS)
    if behind_in_source:
        return CheckResult(
            "sequence_ahead_of_column",
            subject,
            expected,
            seq.next_value,
            WARN,
            f"behind {owner.qualified} in the source as well (rows inserted with explicit "
            "values): new rows collide there too; the restore reproduces it",
        )
    return CheckResult(
        "sequence_ahead_of_column",
        subject,
        expected,
        seq.next_value,
        WARN if seq.cycle else FAIL,
        f"the next value collides with existing rows of {owner.qualified}"
        + (" (the sequence cycles)" if seq.cycle else ""),
    )
