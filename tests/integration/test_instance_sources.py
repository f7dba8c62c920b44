"""Every database of an instance (`backproof backup --databases`): each found database is
backed up under its own name, one created later is picked up by the next run, and one that
fails does not stop the others."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from backproof.cli import main
from backproof.errors import EXIT_FAILED, EXIT_OK
from backproof.pg.cluster import LocalCluster

from ..conftest import S3Store


@pytest.fixture
def instance(pg_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A prefix of database names this test owns in the session's cluster, and a way to
    create more; all are dropped afterwards."""
    monkeypatch.setenv("PGPASSWORD", pg_cluster.password)
    prefix = f"inst{secrets.token_hex(3)}_"
    made: list[str] = []

    def create(suffix: str) -> str:
        name = prefix + suffix
        with psycopg.connect(**pg_cluster.connect_kwargs(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        with psycopg.connect(**pg_cluster.connect_kwargs(name), autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute(
                "INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, %s) i",
                (len(suffix) * 10,),
            )
        made.append(name)
        return name

    yield prefix, create
    with psycopg.connect(**pg_cluster.connect_kwargs(), autocommit=True) as conn:
        for name in made:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _backup_instance(
    cluster: LocalCluster, store: S3Store, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any]]:
    code = main(
        ["backup", "--source-url", cluster.url("postgres"), "--store", store.url, "--json", *extra]
    )
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


def _listed(store: S3Store, capsys: pytest.CaptureFixture[str]) -> set[str]:
    assert main(["list", "--store", store.url, "--json"]) == 0
    return {b["database"] for b in json.loads(capsys.readouterr().out.strip().splitlines()[-1])}


def test_every_matching_database_is_backed_up_under_its_own_name_and_new_ones_are_picked_up(
    pg_cluster: LocalCluster, s3_store: S3Store, capsys: pytest.CaptureFixture[str], instance: Any
) -> None:
    prefix, create = instance
    # Given an instance with two shop databases, an old one excluded, and another database
    a, b = create("shop_a"), create("shop_b")
    create("shop_old")
    create("other")
    pattern = [f"--databases={prefix}shop_*", f"--exclude-databases={prefix}shop_old"]
    # When the instance is backed up under the name "prod"
    code, summary = _backup_instance(
        pg_cluster, s3_store, capsys, *pattern, "--database-name", "prod"
    )
    # Then each matching database has its own backup, filed under prod.<database>
    assert code == EXIT_OK and summary["failed"] == 0
    assert _listed(s3_store, capsys) == {f"prod.{a}", f"prod.{b}"}
    # When a database is created later and the next run comes
    c = create("shop_c")
    code, summary = _backup_instance(
        pg_cluster, s3_store, capsys, *pattern, "--database-name", "prod"
    )
    # Then it is backed up too, beside the others
    assert code == EXIT_OK and summary["backed_up"] == 3
    assert _listed(s3_store, capsys) == {f"prod.{a}", f"prod.{b}", f"prod.{c}"}


def test_a_database_that_cannot_be_backed_up_does_not_stop_the_others(
    pg_cluster: LocalCluster, s3_store: S3Store, capsys: pytest.CaptureFixture[str], instance: Any
) -> None:
    prefix, create = instance
    # Given an instance where one matching database's name cannot be an object key
    good = create("shop_ok")
    create("shop bad name")
    # When the instance is backed up
    code, summary = _backup_instance(pg_cluster, s3_store, capsys, f"--databases={prefix}shop*")
    # Then the good one is backed up, the other is reported failed with the reason, and the
    # run's exit code says something failed
    assert code == EXIT_FAILED
    failed = [d for d in summary["databases"] if "error" in d]
    assert [d["dbname"] for d in failed] == [f"{prefix}shop bad name"]
    assert "cannot be used in object keys" in failed[0]["message"]
    assert _listed(s3_store, capsys) == {good}


def test_a_pattern_matching_nothing_is_refused_and_nothing_is_written(
    pg_cluster: LocalCluster, s3_store: S3Store, capsys: pytest.CaptureFixture[str], instance: Any
) -> None:
    prefix, _ = instance
    # Given no database matching the pattern
    # When the instance is backed up
    code, summary = _backup_instance(pg_cluster, s3_store, capsys, f"--databases={prefix}none_*")
    # Then the request is refused naming the pattern, and nothing is written
    assert code == 2 and "matches" in summary["message"]
    assert s3_store.s3.list_objects_v2(Bucket=s3_store.bucket).get("KeyCount", 0) == 0
