"""Fixtures for the unit tests: moto for the AWS APIs they call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws


@pytest.fixture
def rds() -> Iterator[Any]:
    """moto RDS with a VPC and a DB subnet group "private" in two availability zones."""
    with mock_aws():
        client = boto3.client("rds", region_name="us-east-1")
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(
                VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}"
            )["Subnet"]["SubnetId"]
            for i, z in ((1, "a"), (2, "b"))
        ]
        client.create_db_subnet_group(
            DBSubnetGroupName="private",
            SubnetIds=subnets,
            DBSubnetGroupDescription="private subnets",
        )
        yield client
