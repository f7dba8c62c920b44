"""cdk-nag AwsSolutions, cfn-lint and hadolint over what `cdk deploy` would ship."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import Validations
from aws_cdk import aws_sns as sns

from infra.app import build

from .conftest import ROOT, Synth, cdk_context, synthesize

VENV_BIN = Path(sys.executable).parent


def test_nag_runs_and_every_finding_is_acknowledged(synth: Synth) -> None:
    # Synth raises on any unacknowledged finding; the report proves the pack ran.
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    (pack,) = report["pluginReports"]
    assert pack["pluginName"] == "AwsSolutions"
    assert pack["conclusion"] == "success"
    assert pack["violations"] == []


def test_acknowledgements_carry_reasons(synth: Synth) -> None:

    reasons: dict[str, str] = {}
    for construct in synth.stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                reasons.update({f"{construct.node.path} {k}": v for k, v in entry.data.items()})
    assert len(reasons) > 20
    for rule, reason in reasons.items():
        assert " AwsSolutions::AwsSolutions-" in rule
        assert len(reason.split()) >= 8, (rule, reason)


def test_nag_would_fail_an_unacknowledged_finding(placeholder_layer: Path, tmp_path: Path) -> None:
    # Given the app plus one resource that breaks an AwsSolutions rule (SNS topic without SSL)

    app = cdk.App(
        context={**cdk_context(), "backproof:layer_dir": str(placeholder_layer)},
        outdir=str(tmp_path),
    )
    stack = build(app)
    sns.Topic(stack, "Unencrypted")
    # Then synth refuses it
    with pytest.raises(RuntimeError, match="AwsSolutions-SNS3"):
        app.synth()


@pytest.mark.parametrize("which", ["synth", "synth_two"])
def test_cfn_lint_is_clean(which: str, request: pytest.FixtureRequest) -> None:
    result: Synth = request.getfixturevalue(which)
    template = result.outdir / f"{result.stack.stack_name}.template.json"
    # W3005 (redundant DependsOn) is how CDK writes its dependencies; nothing to fix there.
    run = subprocess.run(
        [str(VENV_BIN / "cfn-lint"), "--ignore-checks", "W3005", "--", str(template)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_dockerfile_is_hadolint_clean() -> None:
    run = subprocess.run(
        [str(VENV_BIN / "hadolint"), str(ROOT / "functions/task/Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout == ""


def test_nag_passes_for_a_concrete_account_and_region(
    placeholder_layer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `cdk synth` from the CLI gives the stack a concrete region (and, with credentials, an
    # account); acknowledgements must still match the findings' spelling.

    monkeypatch.setenv("CDK_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "123456789012")
    result = synthesize(cdk_context(), placeholder_layer, tmp_path)
    report = json.loads((result.outdir / "validation-report.json").read_text())
    assert report["pluginReports"][0]["violations"] == []
    assert result.stack.region == "eu-west-1"
