"""Synthesize the app once per session (per xdist worker) and share the template."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.app import build

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parents[2]
# The chat webhook's secret in the two-database configuration.
CHAT_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:backproof/chat-AbCdEf"
# The second region's bucket and key in the two-database configuration.
REPLICA = {
    "bucket_arn": "arn:aws:s3:::backproof-replica-eu-central-1",
    "region": "eu-central-1",
    "kms_key_arn": "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}


def cdk_context() -> dict[str, Any]:
    return json.loads((ROOT / "cdk.json").read_text())["context"]


@pytest.fixture(scope="session")
def placeholder_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for layers/build/layer so synth needs no network (the layer's own build is
    tested by running layers/build.py in CI's `make synth`)."""
    path = tmp_path_factory.mktemp("layer")
    (path / "python").mkdir()
    (path / "python" / "README").write_text("placeholder layer for tests\n")
    return path


@dataclass
class Synth:
    stack: Any
    template: dict[str, Any]
    assertions: Any  # aws_cdk.assertions.Template
    outdir: Path


def synthesize(context: dict[str, Any], layer: Path, outdir: Path) -> Synth:

    app = cdk.App(context={**context, "backproof:layer_dir": str(layer)}, outdir=str(outdir))
    stack = build(app)
    assembly = app.synth()
    template = assembly.get_stack_by_name(stack.stack_name).template
    return Synth(stack, template, Template.from_json(template), outdir)


@pytest.fixture(scope="session")
def synth(placeholder_layer: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize(cdk_context(), placeholder_layer, tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def two_databases() -> dict[str, Any]:
    """The example configuration plus a second entry, an instance (its billing_* databases),
    in another VPC with other tiers."""
    context = cdk_context()
    config = json.loads(json.dumps(context["backproof"]))
    second = json.loads(json.dumps(config["databases"][0]))
    second.update(
        name="billing",
        vpc_id="vpc-0123456789abcdef0",
        subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        route_table_ids=["rtb-0123456789abcdef0"],
        security_group_id="sg-0123456789abcdef0",
        secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:backproof/billing-XyZ123",
        schedules={"daily": {"cron": "cron(0 1 * * ? *)"}, "yearly": {"cron": "cron(0 5 1 1 ? *)"}},
        retention={"daily": 14, "yearly": 7},
        # an instance: every billing_* database of the server, each backed up on its own
        databases="billing_*",
        exclude_databases=["billing_scratch"],
    )
    config["databases"].append(second)
    config["vpc_endpoints"] = True
    config["object_lock_days"] = 30
    config["chat_webhook_secret_arn"] = CHAT_SECRET_ARN
    config["notify_success"] = True
    config["replica"] = REPLICA
    return {**context, "backproof": config}


@pytest.fixture(scope="session")
def synth_two(
    two_databases: dict[str, Any], placeholder_layer: Path, tmp_path_factory: pytest.TempPathFactory
) -> Synth:
    return synthesize(two_databases, placeholder_layer, tmp_path_factory.mktemp("cdk.out.two"))
