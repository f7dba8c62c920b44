"""The engine's own guard on what a job writes (store/s3.py writes_only_under): a backup
writes only its directory, a verification only its backup's evidence, whatever the role
allows."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from backproof.errors import JobFailed
from backproof.store import open_store


def test_a_job_confined_to_its_directory_cannot_write_or_delete_elsewhere() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="scope-bucket")
        s3.put_object(Bucket="scope-bucket", Key="p/backups/prod/other/manifest.json", Body=b"{}")
        store = open_store("s3://scope-bucket/p", client=s3)
        mine = "p/backups/prod/2026/11/21/20261121T000000.000Z-abcdef/"
        # Given a job confined to its backup's directory
        with store.writes_only_under(mine):
            # Then writing inside it works
            store.put_bytes(mine + "roles.json", b"[]")
            # And writing, uploading or deleting anywhere else is refused, naming both
            with pytest.raises(JobFailed, match="writes only under"):
                store.put_bytes("p/backups/prod/other/manifest.json", b"tampered")
            with pytest.raises(JobFailed, match="writes only under"):
                store.open_upload("p/safety/x/archive.dump.zst")
            with pytest.raises(JobFailed, match="writes only under"):
                store.delete_prefix("p/backups/prod/other/")
            # And a narrower scope cannot widen it
            with (
                pytest.raises(JobFailed, match="refusing to write under"),
                store.writes_only_under("p/"),
            ):
                pass
        # Nothing outside was touched; outside the scope the store writes as before
        body = s3.get_object(Bucket="scope-bucket", Key="p/backups/prod/other/manifest.json")[
            "Body"
        ].read()
        assert body == b"{}"
        store.put_bytes("p/restores/r.json", b"{}")
