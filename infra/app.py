"""CDK entry point: `cdk synth` / `cdk deploy` run `python -m infra.app` (see cdk.json)."""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from backproof.contract import DEPLOYMENT_TAG

from .config import load
from .functions import layer_directory
from .stack import BackproofStack


def build(app: cdk.App) -> BackproofStack:
    """Validate the configuration from context, then compose the stack and its checks."""
    config = load(app.node.try_get_context("backproof"))
    layer_dir = layer_directory(app.node.try_get_context("backproof:layer_dir"))
    env = cdk.Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    stack = BackproofStack(
        app,
        f"Backproof-{config.deployment}",
        config=config,
        layer_dir=layer_dir,
        env=env,
        description="backproof: PostgreSQL backups, each proved by a real restore",
    )
    cdk.Tags.of(stack).add(DEPLOYMENT_TAG, config.deployment)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


def main() -> None:
    app = cdk.App()
    build(app)
    app.synth()


if __name__ == "__main__":
    main()
