"""`backproof demo` as a person runs it: exit 0, a readable report, nothing left running."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .conftest import processes_mentioning


def test_demo_runs_end_to_end_and_leaves_nothing_behind() -> None:
    # Given a clean environment: no endpoint, no credentials, a private temporary directory
    root = Path(tempfile.mkdtemp(prefix="bp-demo-test-", dir="/tmp"))
    root.chmod(0o755)
    report_file = root.parent / f"{root.name}-report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG"))}
    env["TMPDIR"] = str(root)
    try:
        # When the demo runs
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "from backproof.cli import run; run()",
                "demo",
                "--report-file",
                str(report_file),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        # Then it verified the backup, said what it checked and how long each step took
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = proc.stdout
        for expected in (
            "exact row counts",
            "content fingerprints",
            "freshness",
            "VERIFIED",
            "/verifications/",
            "shut everything down",
            "verified",
        ):
            assert expected in out, expected
        report = json.loads(report_file.read_text())
        assert report["verdict"] == "verified" and report["summary"]["fail"] == 0
        rows = sum(c["found"] for c in report["checks"] if c["check"] == "row_count")
        assert 90_000 <= rows <= 110_000
        # And nothing outlives it
        assert processes_mentioning(str(root)) == []
        assert list(root.iterdir()) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)
        report_file.unlink(missing_ok=True)
