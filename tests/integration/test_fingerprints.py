"""How rows are hashed (pg/inventory.py): their binary values where every column's type hashes
the value alone, their text otherwise; each table records which, and a restore is hashed the
same way."""

from __future__ import annotations

from backproof.pg.inventory import ALGORITHM_V2, BINARY, take_inventory

from ..conftest import SourceDatabase

TABLES = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE plain (id int PRIMARY KEY, amount numeric, at timestamptz, tags text[], doc jsonb);
CREATE TABLE with_enum (id int, feeling mood);
CREATE TABLE with_json (id int, doc json);
CREATE TABLE with_oid_name (id int, rel regclass);
INSERT INTO plain SELECT g, g * 1.5, now(), ARRAY['a', g::text], jsonb_build_object('g', g)
FROM generate_series(1, 200) g;
INSERT INTO with_enum VALUES (1, 'ok');
INSERT INTO with_json VALUES (1, '{"a": 1}');
INSERT INTO with_oid_name VALUES (1, 'plain');
"""


def _inventory(db: SourceDatabase) -> dict[str, tuple[str, str]]:
    with db.connect() as conn:
        inventory = take_inventory(conn)
    assert inventory.algorithm == ALGORITHM_V2
    return {t.name: (t.method, t.fingerprint) for t in inventory.tables}


def test_only_types_that_hash_their_value_alone_are_hashed_as_binary(
    source_db: SourceDatabase,
) -> None:
    # Given tables of plain types, and others holding an enum (hashed by its OID, which a
    # restore changes), json (no hash at all) and regclass (an OID)
    source_db.execute(TABLES)
    # When the inventory is taken
    methods = {name: method for name, (method, _) in _inventory(source_db).items()}
    # Then only the plain table is hashed as binary values; the others by their text
    assert methods == {"plain": BINARY, "with_enum": "", "with_json": "", "with_oid_name": ""}


def test_a_single_changed_value_changes_a_binary_fingerprint(source_db: SourceDatabase) -> None:
    # Given a table hashed as binary values
    source_db.execute(TABLES)
    before = _inventory(source_db)["plain"]
    # When one value of one row changes (a scale-preserving change of the amount)
    source_db.execute("UPDATE plain SET amount = amount + 0.5 WHERE id = 17")
    after = _inventory(source_db)["plain"]
    # Then the fingerprint differs, and back again it is equal
    assert after[1] != before[1]
    source_db.execute("UPDATE plain SET amount = amount - 0.5 WHERE id = 17")
    assert _inventory(source_db)["plain"] == before
