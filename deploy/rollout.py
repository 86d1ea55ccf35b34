"""Staged rollout of the functions' new revisions (operations guide: no-traffic
deploy, smoke test, 10% -> 50% -> 100%), and rollback.

A gen2 function is a Cloud Run service. Terraform deploys a new revision with
no traffic (all_traffic_on_latest_revision = false) once `pin` has fixed the
traffic on the revision serving now; `advance` then, per service:

1. smoke test: the new revision must be Ready. Cloud Run starts it before it
   is Ready, and the function's module validates its settings at import
   (spreadpilot.platform.entry.boot), so a bad deployment never gets here;
2. tags it `candidate` and moves traffic 10% -> 50% -> 100%; after each step
   it waits `--bake-seconds` and reads the revision's ERROR log lines: any line
   rolls the service back to the previous revision and fails the build.

    python deploy/rollout.py pin      --project P --region R --services-json FILE
    python deploy/rollout.py advance  --project P --region R --services-json FILE [--bake-seconds N]
    python deploy/rollout.py rollback --project P --region R --service S [--to REVISION]

FILE is `terraform output -json function_services` (function -> service).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

STEPS = (10, 50, 100)


class RolloutError(RuntimeError):
    """A stage failed; the service is back on its previous revision."""


class Gcloud(Protocol):
    def __call__(self, args: Sequence[str]) -> str: ...


def real_gcloud(args: Sequence[str]) -> str:
    done = subprocess.run(["gcloud", *args], check=True, capture_output=True, text=True)
    return done.stdout


@dataclass
class Rollout:
    project: str
    region: str
    gcloud: Gcloud = real_gcloud
    sleep: Callable[[float], None] = time.sleep
    bake_seconds: float = 300.0
    say: Callable[[str], None] = field(default=print)

    def _where(self) -> list[str]:
        return ["--project", self.project, "--region", self.region]

    def describe(self, service: str) -> dict[str, Any] | None:
        try:
            out = self.gcloud(
                ["run", "services", "describe", service, *self._where(), "--format=json"]
            )
        except subprocess.CalledProcessError:
            return None  # not deployed yet
        status: dict[str, Any] = json.loads(out).get("status", {})
        return status

    def serving(self, status: dict[str, Any]) -> dict[str, int]:
        """Revision -> percent of traffic, with 'latest' resolved to its revision."""
        shares: dict[str, int] = {}
        for target in status.get("traffic", []):
            revision = target.get("revisionName") or status.get("latestReadyRevisionName", "")
            if target.get("percent"):
                shares[revision] = shares.get(revision, 0) + int(target["percent"])
        return shares

    def update_traffic(self, service: str, *flags: str) -> None:
        self.gcloud(["run", "services", "update-traffic", service, *self._where(), *flags])

    def pin(self, service: str) -> None:
        """Fix traffic on the revisions serving now, so the next deploy gets none."""
        status = self.describe(service)
        if status is None:
            self.say(f"{service}: not deployed yet; its first revision takes all traffic")
            return
        shares = self.serving(status)
        spec = ",".join(f"{rev}={pct}" for rev, pct in sorted(shares.items()))
        self.update_traffic(service, f"--to-revisions={spec}")
        self.say(f"{service}: traffic pinned on {spec}")

    def advance(self, service: str) -> None:
        status = self.describe(service)
        if status is None:
            raise RolloutError(f"{service}: no such service; run terraform apply first")
        created = status.get("latestCreatedRevisionName")
        ready = status.get("latestReadyRevisionName")
        shares = self.serving(status)
        if shares.get(str(created)) == 100:
            self.say(f"{service}: {created} already serves all traffic")
            return
        previous = max(shares, key=lambda rev: shares[rev]) if shares else None
        if created != ready:
            if previous:
                self.update_traffic(service, f"--to-revisions={previous}=100")
            raise RolloutError(
                f"{service}: smoke test failed: revision {created} is not Ready (its container "
                f"did not start; read its logs); traffic stays on {previous}"
            )
        self.update_traffic(service, f"--set-tags=candidate={created}")
        for percent in STEPS:
            self.update_traffic(service, f"--to-revisions={created}={percent}")
            self.say(f"{service}: {created} serves {percent}%")
            if percent == 100:
                break
            self.sleep(self.bake_seconds)
            errors = self.error_lines(service, str(created))
            if errors:
                if previous:
                    self.update_traffic(service, f"--to-revisions={previous}=100")
                raise RolloutError(
                    f"{service}: {errors} ERROR log lines from {created} at {percent}%: rolled "
                    f"back to {previous}"
                )
        self.update_traffic(service, "--remove-tags=candidate")

    def error_lines(self, service: str, revision: str) -> int:
        query = (
            'resource.type="cloud_run_revision" '
            f'AND resource.labels.service_name="{service}" '
            f'AND resource.labels.revision_name="{revision}" AND severity>=ERROR'
        )
        freshness = f"--freshness={max(1, int(self.bake_seconds // 60) + 1)}m"
        out = self.gcloud(
            ["logging", "read", query, "--project", self.project, freshness, "--format=json"]
        )
        return len(json.loads(out or "[]"))

    def rollback(self, service: str, to: str | None = None) -> str:
        """All traffic to `to`, or to the newest Ready revision before the serving one."""
        if to is None:
            out = self.gcloud(
                [
                    "run",
                    "revisions",
                    "list",
                    "--service",
                    service,
                    *self._where(),
                    "--sort-by=~metadata.creationTimestamp",
                    "--format=json",
                ]
            )
            status = self.describe(service) or {}
            serving = set(self.serving(status))
            ready = [
                r["metadata"]["name"]
                for r in json.loads(out)
                if any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in r.get("status", {}).get("conditions", [])
                )
            ]
            older = [name for name in ready if name not in serving]
            if not older:
                raise RolloutError(f"{service}: no earlier Ready revision to roll back to")
            to = older[0]
        self.update_traffic(service, f"--to-revisions={to}=100")
        self.say(f"{service}: all traffic on {to}")
        return to


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["pin", "advance", "rollback"])
    parser.add_argument("--project", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument(
        "--services-json", type=Path, help="terraform output -json function_services"
    )
    parser.add_argument("--service", action="append", default=[], help="a Cloud Run service")
    parser.add_argument("--to", help="rollback: the revision to serve")
    parser.add_argument("--bake-seconds", type=float, default=300.0)
    args = parser.parse_args(argv)
    services = list(args.service)
    if args.services_json:
        services += sorted(json.loads(args.services_json.read_text()).values())
    if not services:
        parser.error("name the services: --services-json FILE or --service NAME")
    rollout = Rollout(args.project, args.region, bake_seconds=args.bake_seconds)
    try:
        for service in services:
            if args.action == "pin":
                rollout.pin(service)
            elif args.action == "advance":
                rollout.advance(service)
            else:
                rollout.rollback(service, args.to)
    except RolloutError as exc:
        print(f"rollout failed: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
