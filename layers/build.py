"""Build the shared Lambda layer without Docker: the backproof package and its runtime
dependencies as wheels for the Lambda runtime's Python on arm64 (aarch64 manylinux).

    .venv/bin/python layers/build.py [--out layers/build/layer]

The result is a directory holding `python/`, which `infra` packs as the layer asset.
boto3/botocore are left out: the Lambda runtime provides them.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "layers" / "build" / "layer"
# Must match infra.functions.LAMBDA_PYTHON and the functions' architecture (ARM_64).
PYTHON_VERSION = "3.14"
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
# Runtime dependencies of the handlers (boto3 comes with the Lambda runtime).
DEPENDENCIES = (
    "psycopg[binary]>=3.2,<4",
    "zstandard>=0.22",
    "rich>=13",
    # Signatures: the integrity function checks the manifest's before anything is created.
    "cryptography>=42",
    "aws-lambda-powertools[tracer]>=3",
)
PROVIDED_BY_RUNTIME = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "urllib3",
    "dateutil",
    "python_dateutil",
    "six",
)


def pip_install(target: Path, requirements: list[str], *, binary_only: bool) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--target",
        str(target),
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--upgrade",
    ]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    # Platform-specific installs need --only-binary or --no-deps; source builds would
    # compile for this machine, not for Lambda.
    command += ["--only-binary=:all:"] if binary_only else ["--no-deps"]
    subprocess.run([*command, *requirements], check=True)


STAMP = ".source-digest"


def source_digest() -> str:
    """What the layer is built from: the package's files, its metadata and the pinned
    dependencies. A layer whose stamp differs is stale and is rebuilt."""
    digest = hashlib.sha256()
    digest.update("\n".join((PYTHON_VERSION, *PLATFORMS, *DEPENDENCIES)).encode())
    files = [ROOT / "pyproject.toml", *sorted((ROOT / "layers" / "backproof").rglob("*.py"))]
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def is_current(out: Path) -> bool:
    stamp = out / STAMP
    return (out / "python").is_dir() and stamp.is_file() and stamp.read_text() == source_digest()


def build(out: Path) -> Path:
    staging = Path(tempfile.mkdtemp(prefix="backproof-layer-"))
    digest = source_digest()
    try:
        site = staging / "python"
        pip_install(site, list(DEPENDENCIES), binary_only=True)
        # The package itself is pure Python; its dependencies were resolved above.
        pip_install(site, [str(ROOT)], binary_only=False)
        for pattern in PROVIDED_BY_RUNTIME:
            for path in site.glob(f"{pattern}*"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        for cache in site.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        if not any(site.glob("psycopg_binary*")):
            raise SystemExit("layer build: no psycopg-binary wheel for aarch64 was installed")
        # The stamp sits beside python/, so it is not part of the layer's contents.
        (staging / STAMP).write_text(digest)
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(out))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory to create")
    parser.add_argument(
        "--if-stale", action="store_true", help="do nothing when the layer matches the sources"
    )
    args = parser.parse_args()
    if args.if_stale and is_current(args.out.resolve()):
        return
    out = build(args.out.resolve())
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"layer built in {out} ({size / 2**20:.1f} MiB unzipped)")


if __name__ == "__main__":
    main()
