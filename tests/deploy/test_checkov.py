"""checkov over terraform/ (offline, --skip-download): no failed check, at most 6
skips, each justified inline. checkov runs from its own environment
(.tools/checkov, `make checkov`), so its many pins never touch .venv."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.deploy.conftest import REPO

CHECKOV = REPO / ".tools/checkov/bin/checkov"
#: 4 for the platform, 2 for the console (admin_api) being on the internet: its
#: ALLOW_ALL ingress (CKV_GCP_124) and its allUsers invoker (CKV_GCP_102).
MAX_SKIPS = 6


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    if not CHECKOV.exists():
        if shutil.which("make") is None:
            pytest.skip("make is not on PATH: it builds checkov's environment (make checkov)")
        subprocess.run(
            ["make", "-s", str(CHECKOV.relative_to(REPO))], cwd=REPO, check=True, timeout=840
        )
    done = subprocess.run(
        [
            str(CHECKOV),
            "--skip-download",
            "--framework",
            "terraform",
            "-d",
            "terraform",
            "-o",
            "json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.timeout(900)
def test_checkov_finds_no_failed_check(report: dict[str, Any]) -> None:
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 50  # it did look at the resources


@pytest.mark.timeout(900)
def test_checkov_skips_are_few_and_justified(report: dict[str, Any]) -> None:
    # Both environment roots instantiate the same module, so checkov reports each
    # inline skip once per root: count the annotations, not the reports.
    skips = {
        (c["check_id"], c["file_path"], c["resource"]): c["check_result"].get(
            "suppress_comment", ""
        )
        for c in report["results"]["skipped_checks"]
    }
    assert len(skips) <= MAX_SKIPS, sorted(skips)
    for key, reason in skips.items():
        assert len(reason) >= 40, (
            f"{key}: a skip needs its reason inline (# checkov:skip=ID:reason)"
        )
