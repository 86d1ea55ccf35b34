"""Fixtures for the deployment tests: the terraform binary and temporary copies of the repo."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: What the consistency checks read: the Terraform, the definitions and the code.
COPIED = ("terraform", "functions", "scheduler", "shared", "deploy")


@pytest.fixture(scope="session")
def terraform() -> str:
    path = shutil.which("terraform")
    if path is None:
        pytest.skip(
            "terraform is not on PATH: the offline Terraform checks need the binary "
            "(https://developer.hashicorp.com/terraform/install)"
        )
    return path


@pytest.fixture
def repo_copy(tmp_path: Path) -> Callable[[], Path]:
    """Make a copy of the repository's deployment-relevant parts to mutate."""

    def make() -> Path:
        root = tmp_path / "repo"
        for name in COPIED:
            shutil.copytree(
                REPO / name,
                root / name,
                symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".terraform"),
            )
        return root

    return make
