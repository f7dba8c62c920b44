"""Messages a restore into another major, or as a non-superuser, prints: the harmless ones
explained, the superuser-only ones fatal with a reason that says so; and output that parallel
workers interleaved still splits into its messages."""

from __future__ import annotations

import pytest

from backproof.pg.messages import classify_pg_restore_output, error_line, message_subject

TIMEOUT = (
    "pg_restore: error: could not execute query: ERROR:  unrecognized configuration parameter "
    '"transaction_timeout"\nCommand was: SET transaction_timeout = 0;\n'
)


def test_transaction_timeout_into_an_older_server_has_its_own_reason() -> None:
    [message] = classify_pg_restore_output(TIMEOUT)
    assert not message.fatal and "transaction_timeout" in message.reason
    assert "older server" in message.reason


@pytest.mark.parametrize(
    "output",
    [
        # both workers' prefixes first, then both messages
        "pg_restore:pg_restore:  error: error: "
        + TIMEOUT.removeprefix("pg_restore: error: ")
        + TIMEOUT.removeprefix("pg_restore: error: "),
        # one message written inside another's prefix
        "pg_restore:" + TIMEOUT + " error: " + TIMEOUT.removeprefix("pg_restore: error: "),
    ],
)
def test_interleaved_parallel_output_splits_into_its_messages(output: str) -> None:
    messages = classify_pg_restore_output(output)
    assert len(messages) == 2, messages
    assert all(not m.fatal and "transaction_timeout" in m.reason for m in messages)


def test_public_schema_owned_by_the_bootstrap_superuser_is_harmless_for_its_owner_only() -> None:
    text = (
        "pg_restore: error: could not execute query: ERROR:  must be owner of schema public\n"
        "Command was: ALTER SCHEMA public OWNER TO app;\n"
    )
    assert [m.fatal for m in classify_pg_restore_output(text)] == [False]
    other = text.replace("ALTER SCHEMA public OWNER TO app;", "CREATE TABLE public.t (a int);")
    assert [m.fatal for m in classify_pg_restore_output(other)] == [True]


@pytest.mark.parametrize(
    ("error", "command", "subject"),
    [
        (
            "permission denied for language c",
            "CREATE FUNCTION public.widget_in(cstring) RETURNS public.widget",
            "CREATE FUNCTION public.widget_in(cstring) RETURNS public.widget",
        ),
        (
            "must be superuser to create a base type",
            "CREATE TYPE public.widget (",
            "CREATE TYPE public.widget (",
        ),
        (
            "must be owner of type integer",
            "CREATE TRANSFORM FOR integer LANGUAGE sql (FROM SQL WITH FUNCTION f(internal));",
            "CREATE TRANSFORM FOR integer LANGUAGE sql (FROM SQL WITH FUNCTION f(internal));",
        ),
        (
            'permission denied for column "rolname" of relation "pg_authid"',
            "GRANT SELECT(rolname) ON TABLE pg_catalog.pg_authid TO postgres;",
            "GRANT SELECT(rolname) ON TABLE pg_catalog.pg_authid TO postgres;",
        ),
        (
            'permission denied to create access method "heap2"\n'
            "HINT:  Must be superuser to create an access method.",
            "CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler;",
            "CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler;",
        ),
    ],
)
def test_superuser_only_objects_are_fatal_and_say_why(
    error: str, command: str, subject: str
) -> None:
    text = f"pg_restore: error: could not execute query: ERROR:  {error}\nCommand was: {command}\n"
    [message] = classify_pg_restore_output(text)
    assert message.fatal and "needs a superuser" in message.reason
    assert message_subject(message) == subject
    assert error_line(message) == error.splitlines()[0]


@pytest.mark.parametrize(
    "text",
    [
        # a user type's owner, or a user table's grant, is no superuser matter
        "pg_restore: error: could not execute query: ERROR:  must be owner of type public.t\n"
        "Command was: ALTER TYPE public.t ADD VALUE 'x';\n",
        'pg_restore: error: could not execute query: ERROR:  permission denied for relation "t"\n'
        "Command was: GRANT SELECT ON TABLE public.t TO app;\n",
    ],
)
def test_look_alikes_are_not_called_superuser_only(text: str) -> None:
    [message] = classify_pg_restore_output(text)
    assert message.fatal and "superuser" not in message.reason
