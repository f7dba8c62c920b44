"""Reading sequences: each one's state and the column it belongs to, and the extreme values of
those columns.

Reads of a sequence are not transactional: inside a snapshot they still show the sequence as
it is at that instant (see model/sequences.py for what the backup makes of that).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from ..model.sequences import SequenceOwner, SequenceState, next_value

# pg_sequence_last_value is NULL for a sequence never called (or after setval(..., false)); the
# state of those is read from the sequence itself.
_SEQUENCES_SQL = """
SELECT n.nspname, c.relname,
       has_seq AS readable,
       CASE WHEN has_seq THEN pg_catalog.pg_sequence_last_value(c.oid) END,
       s.seqincrement, s.seqmin, s.seqmax, s.seqcycle,
       o.nspname, o.relname, o.attname, o.deptype::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
CROSS JOIN LATERAL (SELECT pg_catalog.has_sequence_privilege(c.oid, 'SELECT') AS has_seq) p
LEFT JOIN LATERAL (
    SELECT tn.nspname, t.relname, a.attname, d.deptype
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
    JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
    JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
    LIMIT 1
) o ON true
WHERE c.relkind = 'S'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"
"""

# Owning columns whose extremes can be compared with a sequence: integer columns of tables.
_CHECKABLE_SQL = """
SELECT tn.nspname, t.relname, a.attname
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class t ON t.oid = a.attrelid
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
WHERE t.relkind IN ('r', 'p') AND NOT a.attisdropped
  AND (CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END)
      IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype,
          'pg_catalog.int8'::pg_catalog.regtype)
  AND (tn.nspname::text, t.relname::text, a.attname::text)
      IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))
"""


def read_sequences(conn: psycopg.Connection[Any]) -> list[SequenceState]:
    """Every user sequence's state as it is now, with the column that owns it."""
    states = []
    for row in conn.execute(_SEQUENCES_SQL).fetchall():
        schema, name, readable, last, inc, lo, hi, cycle, o_schema, o_table, o_col, dep = row
        owner = SequenceOwner(o_schema, o_table, o_col, dep) if o_table is not None else None
        position = None
        if last is not None:
            position = next_value(int(last), True, int(inc))
        elif readable:
            raw, called = conn.execute(
                sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(schema, name))
            ).fetchone()  # type: ignore[misc]
            position = next_value(int(raw), bool(called), int(inc))
        states.append(
            SequenceState(
                schema=schema,
                name=name,
                last_value=None if last is None else int(last),
                next_value=position,
                increment=int(inc),
                min_value=int(lo),
                max_value=int(hi),
                cycle=bool(cycle),
                owned_by=owner,
            )
        )
    return states


def owned_column_extremes(
    conn: psycopg.Connection[Any], sequences: list[SequenceState]
) -> dict[tuple[str, str], int | None]:
    """For each sequence owned by an integer column of a table: the column's maximum (its
    minimum for a descending sequence), None when it holds no value. Sequences owned by
    anything else are left out."""
    owned = [s for s in sequences if s.owned_by is not None]
    if not owned:
        return {}
    owners = [s.owned_by for s in owned if s.owned_by is not None]
    rows = conn.execute(
        _CHECKABLE_SQL,
        ([o.schema for o in owners], [o.table for o in owners], [o.column for o in owners]),
    ).fetchall()
    checkable = {(s, t, c) for s, t, c in rows}
    extremes: dict[tuple[str, str], int | None] = {}
    for seq in owned:
        o = seq.owned_by
        assert o is not None
        if (o.schema, o.table, o.column) not in checkable:
            continue
        # Not ONLY: inheritance children and partitions draw from the same sequence.
        query = sql.SQL("SELECT {fn}({col}) FROM {table}").format(
            fn=sql.SQL("max" if seq.ascending else "min"),
            col=sql.Identifier(o.column),
            table=sql.Identifier(o.schema, o.table),
        )
        row = conn.execute(query).fetchone()
        extremes[(seq.schema, seq.name)] = None if row is None or row[0] is None else int(row[0])
    return extremes
