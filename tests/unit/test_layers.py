"""The engine's shape: imports point one way (the import-linter contract in pyproject.toml),
no import cycle inside the package, no module over 400 lines."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from backproof.contract import BAD_INPUT_ERRORS
from backproof.errors import BadInput

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "backproof" / "backproof"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(package_parent), str(ROOT / "functions"), str(ROOT)]),
    }
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )


def test_the_layers_contract_holds() -> None:
    result = lint_imports(PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import"),
    [
        ("model/checks.py", "from ..cli import main"),  # data importing the command line
        ("pg/target.py", "from ..store import open_store"),  # siblings importing each other
        ("errors.py", "from .jobs import verify"),  # the bottom importing a job
    ],
)
def test_the_contract_breaks_when_a_lower_layer_imports_a_higher_one(
    tmp_path: Path, module: str, bad_import: str
) -> None:
    # Given a copy of the engine where one lower module imports upwards
    copy = tmp_path / "backproof"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{bad_import}  # noqa\n")
    # When the layers check runs on it
    result = lint_imports(tmp_path)
    # Then it fails and names the import
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    name = "backproof." + module.removesuffix(".py").replace("/", ".")
    assert name in result.stdout, result.stdout


def test_no_import_cycles_in_the_engine() -> None:
    graph = grimp.build_graph("backproof", include_external_packages=False)
    cycles = []
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if module != imported and graph.chain_exists(imported, module, as_packages=False):
                cycles.append((module, imported))
    assert cycles == []


def test_no_engine_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert long == {}


def test_the_contract_names_every_bad_input_error() -> None:
    # The workflows reject a request on these names; a BadInput added to errors.py without
    # its name here would turn an operator's mistake into a failed backup.
    found, todo = set(), [BadInput]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    assert found == set(BAD_INPUT_ERRORS)
