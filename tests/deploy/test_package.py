"""Each function's zip is self-contained and reproducible (deploy/package.py, `make package`)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deploy.package import build, function_names, main
from tests.deploy.conftest import REPO


def test_every_function_folder_is_packaged_with_the_package_and_requirements(
    tmp_path: Path,
) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert sorted(p.stem for p in tmp_path.glob("*.zip")) == function_names()
    assert {"dispatcher", "signal_poller"} <= set(function_names())
    for name in function_names():
        with zipfile.ZipFile(tmp_path / f"{name}.zip") as archive:
            names = set(archive.namelist())
            assert archive.read("main.py") == (REPO / "functions" / name / "main.py").read_bytes()
            assert archive.read("requirements.txt") == (REPO / "requirements.txt").read_bytes()
        assert {"spreadpilot/__init__.py", "spreadpilot/platform/topics.yaml"} <= names
        assert "spreadpilot/platform/secrets.yaml" in names
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert not [n for n in names if n.startswith(("tests/", "ibsim/", "terraform/"))]


def test_the_same_code_gives_the_same_bytes(tmp_path: Path) -> None:
    first = hashlib.md5(build("dispatcher", tmp_path / "a").read_bytes()).hexdigest()
    second = hashlib.md5(build("dispatcher", tmp_path / "b").read_bytes()).hexdigest()
    assert first == second


def test_the_zip_alone_imports_its_entry_point(tmp_path: Path) -> None:
    """What the runtime does: import main from the unpacked source, the package from beside it."""
    zipfile.ZipFile(build("signal_poller", tmp_path)).extractall(tmp_path / "src")
    code = (
        "import main, spreadpilot, sys; "
        "assert spreadpilot.__file__.startswith(sys.argv[1]), spreadpilot.__file__; "
        "assert callable(main.signal_poller)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "src")],
        cwd=tmp_path / "src",
        env={"SPREADPILOT_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_an_unknown_function_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["risk_check"])
    assert "no functions/<name>/main.py for risk_check" in capsys.readouterr().err


def test_the_console_s_templates_and_static_files_travel_with_the_package(
    tmp_path: Path,
) -> None:
    """Every non-Python file under shared/spreadpilot is packaged, so the status page's
    templates and static assets reach admin_api (on a copy: they may not exist yet)."""
    root = tmp_path / "repo"
    shutil.copytree(
        REPO / "shared/spreadpilot",
        root / "shared/spreadpilot",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    shutil.copytree(REPO / "functions/admin_api", root / "functions/admin_api")
    shutil.copy(REPO / "requirements.txt", root / "requirements.txt")
    admin = root / "shared/spreadpilot/admin"
    assets = {
        "templates/status.html": b"<!doctype html><title>SpreadPilot</title>\n",
        "static/console.css": b"body { margin: 0 }\n",
        "static/console.js": b"'use strict';\n",
        "static/icons/logo.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>\n",
    }
    for relative, data in assets.items():
        (admin / relative).parent.mkdir(parents=True, exist_ok=True)
        (admin / relative).write_bytes(data)
    (admin / "static/__pycache__").mkdir()
    (admin / "static/__pycache__/x.cpython-311.pyc").write_bytes(b"\0")

    assert function_names(root) == ["admin_api"]
    with zipfile.ZipFile(build("admin_api", tmp_path / "out", root)) as archive:
        names = set(archive.namelist())
        for relative, data in assets.items():
            assert archive.read(f"spreadpilot/admin/{relative}") == data
        assert archive.read("main.py") == (REPO / "functions/admin_api/main.py").read_bytes()
    assert "spreadpilot/admin/static/__pycache__/x.cpython-311.pyc" not in names
    assert "spreadpilot/platform/secrets.yaml" in names
