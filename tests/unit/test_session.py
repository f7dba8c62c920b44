"""The session settings every connection starts with, merged with the operator's own options."""

from __future__ import annotations

import pytest

from backproof.pg.session import PINNED, settings_after_connect, startup_options
from backproof.pg.target import Target


def test_pins_are_escaped_for_libpq_and_come_after_the_callers_options() -> None:
    options = startup_options("-c work_mem=64MB")
    assert options.startswith("-c work_mem=64MB -c ")
    assert r"-c DateStyle=ISO,\ YMD" in options
    assert r"-c default_transaction_isolation=read\ committed" in options
    assert options.count("-c ") == len(PINNED) + 1


def test_version_dependent_pins_only_where_the_server_knows_them() -> None:
    assert settings_after_connect(130000) == {}
    assert settings_after_connect(150000) == {"idle_session_timeout": "0"}
    assert set(settings_after_connect(170002)) == {"idle_session_timeout", "transaction_timeout"}


def test_own_connections_and_children_get_the_pins_with_the_operators_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given options in PGOPTIONS, and a target whose URL has none
    monkeypatch.setenv("PGOPTIONS", "-c role=reader")
    target = Target.from_url("postgresql://u@db.internal:5432/shop")
    # Then our sessions and the children's carry both, the pins last (they win)
    kwargs = target.connect_kwargs()
    assert kwargs["options"].startswith("-c role=reader -c DateStyle=")
    assert kwargs["client_encoding"] == "UTF8"
    assert target.child_env()["PGOPTIONS"] == kwargs["options"]
    # And options in the URL take the place of PGOPTIONS, as in libpq, and travel in the
    # environment rather than in the child's conninfo
    from_url = Target.from_url("postgresql://u@db.internal:5432/shop?options=-c%20work_mem%3D1GB")
    assert from_url.session_options().startswith("-c work_mem=1GB -c DateStyle=")
    assert "options" not in from_url.conninfo() and "work_mem" not in from_url.conninfo()
    assert from_url.child_env()["PGOPTIONS"] == from_url.session_options()
