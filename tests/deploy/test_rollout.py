"""The staged rollout's decisions, against a fake gcloud that records every command."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Any

import pytest

from deploy.rollout import Rollout, RolloutError


class FakeGcloud:
    def __init__(self, status: dict[str, Any] | None, errors: Sequence[int] = ()) -> None:
        self.status = status
        self.errors = list(errors)  # ERROR log lines found after each bake
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str]) -> str:
        self.calls.append(list(args))
        if args[:3] == ["run", "services", "describe"]:
            if self.status is None:
                raise subprocess.CalledProcessError(1, "gcloud")
            return json.dumps({"status": self.status})
        if args[:2] == ["logging", "read"]:
            return json.dumps([{"severity": "ERROR"}] * self.errors.pop(0))
        if args[:3] == ["run", "revisions", "list"]:
            return json.dumps(
                [
                    {
                        "metadata": {"name": n},
                        "status": {"conditions": [{"type": "Ready", "status": s}]},
                    }
                    for n, s in (("svc-3", "True"), ("svc-2", "False"), ("svc-1", "True"))
                ]
            )
        return ""

    def traffic(self) -> list[str]:
        return [c[-1] for c in self.calls if c[:3] == ["run", "services", "update-traffic"]]


def rollout(fake: FakeGcloud) -> Rollout:
    return Rollout(
        "p", "us-east4", gcloud=fake, sleep=lambda _s: None, bake_seconds=60, say=lambda _m: None
    )


def status(created: str, ready: str, traffic: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "latestCreatedRevisionName": created,
        "latestReadyRevisionName": ready,
        "traffic": traffic,
    }


def test_pin_fixes_traffic_on_the_revision_serving_now() -> None:
    fake = FakeGcloud(status("svc-1", "svc-1", [{"latestRevision": True, "percent": 100}]))
    rollout(fake).pin("svc")
    assert fake.traffic() == ["--to-revisions=svc-1=100"]


def test_pin_leaves_a_service_that_does_not_exist_yet() -> None:
    fake = FakeGcloud(None)
    rollout(fake).pin("svc")
    assert fake.traffic() == []


def test_a_healthy_revision_goes_10_50_100_after_its_smoke_test() -> None:
    fake = FakeGcloud(
        status("svc-2", "svc-2", [{"revisionName": "svc-1", "percent": 100}]), errors=[0, 0]
    )
    rollout(fake).advance("svc")
    assert fake.traffic() == [
        "--set-tags=candidate=svc-2",
        "--to-revisions=svc-2=10",
        "--to-revisions=svc-2=50",
        "--to-revisions=svc-2=100",
        "--remove-tags=candidate",
    ]
    reads = [c for c in fake.calls if c[:2] == ["logging", "read"]]
    assert len(reads) == 2 and 'resource.labels.revision_name="svc-2"' in reads[0][2]


def test_errors_at_10_percent_roll_back_and_fail() -> None:
    fake = FakeGcloud(
        status("svc-2", "svc-2", [{"revisionName": "svc-1", "percent": 100}]), errors=[3]
    )
    with pytest.raises(
        RolloutError, match="3 ERROR log lines from svc-2 at 10%: rolled back to svc-1"
    ):
        rollout(fake).advance("svc")
    assert fake.traffic()[-1] == "--to-revisions=svc-1=100"


def test_a_revision_that_never_became_ready_fails_the_smoke_test_and_gets_no_traffic() -> None:
    fake = FakeGcloud(status("svc-2", "svc-1", [{"revisionName": "svc-1", "percent": 100}]))
    with pytest.raises(RolloutError, match="smoke test failed: revision svc-2 is not Ready"):
        rollout(fake).advance("svc")
    assert fake.traffic() == ["--to-revisions=svc-1=100"]


def test_nothing_to_do_when_the_new_revision_already_serves_everything() -> None:
    fake = FakeGcloud(status("svc-2", "svc-2", [{"latestRevision": True, "percent": 100}]))
    rollout(fake).advance("svc")
    assert fake.traffic() == []


def test_rollback_goes_to_the_newest_ready_revision_not_serving() -> None:
    fake = FakeGcloud(status("svc-3", "svc-3", [{"latestRevision": True, "percent": 100}]))
    assert rollout(fake).rollback("svc") == "svc-1"  # svc-2 never became Ready
    assert fake.traffic() == ["--to-revisions=svc-1=100"]
    assert rollout(fake).rollback("svc", to="svc-2") == "svc-2"
