"""Every message pg_restore prints is classified fatal or known-harmless; unknown is fatal."""

from __future__ import annotations

from pathlib import Path

import pytest

from backproof.pg.messages import OWNERSHIP_SKIPPED_RULES, classify_pg_restore_output
from backproof.pg.programs import PgProgram
from backproof.pg.restore import PgRestore, RestoreOutcome
from backproof.pg.target import Target

PARALLEL_OUTPUT = """\
pg_restore: error: could not execute query: ERROR:  role "app_owner" does not exist
Command was: ALTER TABLE public.b OWNER TO app_owner;

pg_restore: error: could not execute query: ERROR:  insert or update on table "b" violates \
foreign key constraint "b_id_fkey"
DETAIL:  Key (id)=(1) is not present in table "a".
Command was: ALTER TABLE ONLY public.b
    ADD CONSTRAINT b_id_fkey FOREIGN KEY (id) REFERENCES public.a(id);


pg_restore: warning: errors ignored on restore: 3
"""

SERIAL_OUTPUT = """\
pg_restore: while PROCESSING TOC:
pg_restore: from TOC entry 5; 0 0 COMMENT EXTENSION plpgsql
pg_restore: error: could not execute query: ERROR:  must be owner of extension plpgsql
Command was: COMMENT ON EXTENSION plpgsql IS 'PL/pgSQL procedural language';

pg_restore: from TOC entry 6; 0 0 ENCODING ENCODING
pg_restore: error: could not execute query: ERROR:  unrecognized configuration parameter \
"transaction_timeout"
Command was: SET transaction_timeout = 0;

pg_restore: warning: errors ignored on restore: 2
"""


def test_parallel_output_keeps_fk_failure_fatal_and_owner_harmless_when_owners_skipped() -> None:
    # Where the operator chose --no-owners, a missing owner role is what was asked for
    messages = classify_pg_restore_output(PARALLEL_OUTPUT, OWNERSHIP_SKIPPED_RULES)
    assert [(m.severity, m.fatal) for m in messages] == [
        ("error", False),
        ("error", True),
        ("warning", False),
    ]
    assert "role" in messages[0].reason
    assert "b_id_fkey" in messages[1].text and "REFERENCES public.a" in messages[1].text


def test_missing_role_is_fatal_unless_the_operator_skipped_ownership() -> None:
    # A verification creates the roles first: one still missing means owners were not restored
    messages = classify_pg_restore_output(PARALLEL_OUTPUT)
    assert [m.fatal for m in messages] == [True, True, False]
    member = (
        'pg_restore: error: could not execute query: ERROR:  must be able to SET ROLE "app"\n'
        "Command was: ALTER TABLE public.b OWNER TO app;\n"
    )
    assert [m.fatal for m in classify_pg_restore_output(member)] == [True]
    assert [m.fatal for m in classify_pg_restore_output(member, OWNERSHIP_SKIPPED_RULES)] == [False]


def test_serial_output_attaches_toc_context_and_knows_old_server_settings() -> None:
    messages = classify_pg_restore_output(SERIAL_OUTPUT)
    assert [m.fatal for m in messages] == [False, False, False]
    assert messages[0].toc_entry.startswith("from TOC entry 5;")
    assert "older server" in messages[1].reason or "does not know" in messages[1].reason


@pytest.mark.parametrize(
    "text",
    [
        'pg_restore: error: could not execute query: ERROR:  relation "a" already exists\n'
        "Command was: CREATE TABLE public.a (id integer);\n",
        'pg_restore: error: could not execute query: ERROR:  extension "postgis" is not available\n'
        "Command was: CREATE EXTENSION IF NOT EXISTS postgis WITH SCHEMA public;\n",
        "pg_restore: error: could not read from input file: end of file\n",
        "pg_restore: error: could not find block ID 1234 in archive -- possibly corrupt archive\n",
        'pg_restore: error: COPY failed for table "orders": ERROR:  out of memory\n',
        "pg_restore: warning: something nobody has seen before\n",
        "something that is not even a pg_restore line\n",
        # The right error text on the wrong command is not harmless.
        'pg_restore: error: could not execute query: ERROR:  role "x" does not exist\n'
        "Command was: CREATE POLICY p ON t TO x USING (true);\n",
        "pg_restore: error: could not execute query: ERROR:  unrecognized configuration parameter "
        '"foo"\nCommand was: CREATE TABLE t (a int) WITH (foo = 1);\n',
    ],
)
def test_anything_not_known_harmless_is_fatal(text: str) -> None:
    messages = classify_pg_restore_output(text)
    assert messages and all(m.fatal for m in messages), messages


def test_clean_of_a_partition_constraint_is_harmless_only_for_drop_constraint() -> None:
    drop = (
        "pg_restore: error: could not execute query: ERROR:  cannot drop inherited constraint "
        '"events_2024_pkey" of relation "events_2024"\nCommand was: ALTER TABLE IF EXISTS ONLY '
        "public.events_2024 DROP CONSTRAINT IF EXISTS events_2024_pkey;\n"
    )
    assert [m.fatal for m in classify_pg_restore_output(drop)] == [False]
    other = drop.replace(
        "ALTER TABLE IF EXISTS ONLY public.events_2024 DROP CONSTRAINT IF EXISTS events_2024_pkey;",
        "DROP TABLE public.events_2024;",
    )
    assert [m.fatal for m in classify_pg_restore_output(other)] == [True]


def test_progress_lines_are_information() -> None:
    messages = classify_pg_restore_output(
        'pg_restore: connecting to database for restore\npg_restore: creating TABLE "public.a"\n'
    )
    assert [(m.severity, m.fatal) for m in messages] == [("info", False), ("info", False)]


def test_outcome_needs_every_error_harmless_and_exit_1_needs_a_message() -> None:
    harmless = classify_pg_restore_output(SERIAL_OUTPUT)
    assert RestoreOutcome(1.0, 1, harmless).ok
    assert not RestoreOutcome(1.0, 1, []).ok
    assert not RestoreOutcome(1.0, 1, classify_pg_restore_output(PARALLEL_OUTPUT)).ok
    assert RestoreOutcome(1.0, 0, []).ok


def test_command_line_never_holds_the_password() -> None:
    target = Target.from_params(
        host="db.internal", port=5432, user="admin", dbname="shop", password="s3cret!"
    )
    cmd = PgRestore(
        PgProgram(15, 4, Path("/usr/bin/pg_restore")),
        Path("/tmp/a.dump"),
        target,
        jobs=4,
        clean=True,
    )
    assert "s3cret!" not in " ".join(cmd.argv)
    assert "--jobs=4" in cmd.argv and "--no-owner" in cmd.argv and "--if-exists" in cmd.argv
    assert cmd.argv[-1] == "/tmp/a.dump"
    assert target.child_env()["PGPASSWORD"] == "s3cret!"
    assert "s3cret" not in repr(target)
