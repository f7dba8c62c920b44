"""How dump workers name tables to pg_dump, and when a dump stays one archive."""

from __future__ import annotations

import pytest

from backproof.jobs.dump_workers import Share, pattern, selects_objects, share_args
from backproof.pg.merge import ArchiveFormatError, merge


def test_a_table_pattern_is_literal_whatever_the_name_holds() -> None:
    # Given names with dots, quotes, pattern characters and upper case
    # Then each pattern is quoted, so pg_dump matches exactly that table
    assert pattern("Sales", "Order Items") == '"Sales"."Order Items"'
    assert pattern("a.b", 'x"y*?') == '"a.b"."x""y*?"'


def test_a_part_names_its_tables_and_the_main_archive_leaves_their_data_out() -> None:
    tables = [("public", "big"), ("s", "t")]
    assert share_args(Share(1, tables)) == [
        "--data-only",
        '--table="public"."big"',
        '--table="s"."t"',
    ]
    assert share_args(Share(0, tables)) == [
        '--exclude-table-data="public"."big"',
        '--exclude-table-data="s"."t"',
    ]


@pytest.mark.parametrize(
    ("args", "selects"),
    [
        (["--no-comments"], False),
        (["--exclude-table-data=audit.*"], True),
        (["-t", "x"], True),
        (["-tx"], True),
        (["--schema=public"], True),
        (["--section=data"], True),
        (["--no-owner", "--encoding=UTF8"], False),
    ],
)
def test_pg_dump_arguments_that_select_objects_keep_one_archive(
    args: list[str], selects: bool
) -> None:
    assert selects_objects(args) is selects


def test_streams_that_are_not_custom_archives_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Given something that is not an archive
    # Then the merge refuses it, naming why, instead of writing a broken archive
    with pytest.raises(ArchiveFormatError, match="not a custom-format archive"):
        merge([b"SELECT 1;\n" * 10], [], tmp_path / "out.dump")
    with pytest.raises(ArchiveFormatError, match="ends inside its TOC"):
        merge([b"PGDMP\x01\x0e\x00\x04\x08\x01"], [], tmp_path / "out.dump")
