"""AWS clients, created once per Lambda container and reused across invocations."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3


@cache
def rds() -> Any:
    return boto3.client("rds")


@cache
def ssm() -> Any:
    return boto3.client("ssm")


@cache
def dynamodb() -> Any:
    return boto3.client("dynamodb")


@cache
def cloudwatch() -> Any:
    return boto3.client("cloudwatch")
