"""Is the Terraform in sync with the code? Checked offline on any copy of the repository.

`problems(root)` lists every disagreement between what the code at `root` needs
and what `root/terraform` provisions, each naming the fix; an empty list means
in sync. Two views of the Terraform are compared with the code:

* what it *generates*: the catalog module (terraform/modules/catalog) evaluated
  by the real terraform binary (it has no provider, so it runs offline), i.e.
  the exact topics, subscriptions, jobs, functions and secrets Terraform
  iterates over; and what the gateway VM will run (modules/gateway_boot);
* how it *uses* that: the resource blocks, parsed with python-hcl2, must
  iterate over the catalog and bind the fields that matter (entry point,
  schedule, dead-letter policy, secret readers...), so no resource can drift
  from the catalog or be written by hand beside it.

The code's view comes from the code itself: topics.yaml through
spreadpilot.platform.topology.build_topology, jobs.yaml through load_jobs, the
functions' decorated entry points, and an AST scan of every module for the
topics it publishes to and the secrets it reads.

A function is either a cloud_event function, delivered to by exactly one push
subscription of topics.yaml (its `trigger`), internal-only; or an HTTP function
(`trigger: http`), which no subscription delivers to. Only an HTTP function may
open its ingress, and only one marked `public: true` (with a health_path) may be
invoked by allUsers: the console (admin_api), which authenticates every request
itself.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import yaml
from hcl2 import SerializationOptions

from gateway.agent import GATEWAYS_ENV, GatewayConfig, GatewayConfigError, parse_gateways
from spreadpilot.platform import collections as C
from spreadpilot.platform.schedules import load_jobs
from spreadpilot.platform.topology import build_topology
from spreadpilot.ports.store import EXPIRE_AT

#: Two logins (live and paper) to render the gateway VM with; keys are gateway ids.
SAMPLE_LOGINS: dict[str, dict[str, Any]] = {
    "alice": {
        "trading_mode": "live",
        "api_port": 4001,
        "vnc_port": 5901,
        "auto_restart_time": "11:45 PM",
        "client_id": 7,
        "accounts": ["U1234567"],
    },
    "bob": {
        "trading_mode": "paper",
        "api_port": 4002,
        "vnc_port": 5902,
        "auto_restart_time": "11:50 PM",
        "client_id": 12,
        "accounts": ["DU1234567", "DU7654321"],
    },
}
AGENT = "gateway-agent"
IAP_RANGE = "35.235.240.0/20"
#: Top-level folders whose code does not run in the deployed system.
NOT_DEPLOYED = {"tests", "bench", "ibsim", "deploy", "terraform", "dist", "scheduler"}
DESCRIPTOR_KEYS = {
    "entry_point",
    "description",
    "trigger",
    "timeout_seconds",
    "memory",
    "cpu",
    "min_instances",
    "max_instances",
    "publishes",
    "firestore",
    "latency_slo",
}
#: Optional keys, with the catalog's defaults (None: absent means absent).
OPTIONAL_DESCRIPTOR_KEYS: dict[str, Any] = {
    "health_path": None,
    "ingress": "ALLOW_INTERNAL_ONLY",
    "public": False,
    "concurrency": 1,
}
HTTP_TRIGGER = "http"
INTERNAL_INGRESS = "ALLOW_INTERNAL_ONLY"
INGRESS_SETTINGS = {INTERNAL_INGRESS, "ALLOW_INTERNAL_AND_GCLB", "ALLOW_ALL"}
#: The values of the `latency-slo` label; monitoring.tf alerts on "interactive".
LATENCY_SLOS = {"batch", "interactive"}
#: IAM members meaning "anyone" (allAuthenticatedUsers: any Google account).
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
PUBLIC_INVOKER = {
    "for_each": "${toset(local.catalog.public_functions)}",
    "role": "roles/run.invoker",
    "member": "allUsers",
}
#: The only roles granted on the whole project; everything else is on a resource.
PROJECT_ROLES = {
    "roles/datastore.user",  # conditioned on the database
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/artifactregistry.writer",
    "roles/datastore.importExportAdmin",
}
_HCL = SerializationOptions(
    with_comments=True, explicit_blocks=False, strip_string_quotes=True, preserve_heredocs=False
)


class TerraformError(RuntimeError):
    """terraform could not evaluate a module (a precondition or validation failed)."""


# --- terraform, offline ----------------------------------------------------------


def terraform_env() -> dict[str, str]:
    """No CLI config, no checkpoint call home, no colour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env.update(TF_CLI_CONFIG_FILE=os.devnull, CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1")
    return env


def evaluate(terraform: str, root: Path, module: str, inputs: dict[str, Any]) -> Any:
    """Outputs of the provider-free module root/terraform/modules/<module>, by terraform."""
    config = {
        "module": {"m": {"source": str(root / "terraform" / "modules" / module), **inputs}},
        "output": {"m": {"value": "${module.m}"}},
    }
    with tempfile.TemporaryDirectory(prefix="tf-eval-") as work:
        Path(work, "main.tf.json").write_text(json.dumps(config))
        for args in (["init", "-backend=false"], ["apply", "-auto-approve"]):
            done = subprocess.run(
                [terraform, f"-chdir={work}", *args, "-input=false", "-no-color"],
                capture_output=True,
                text=True,
                env=terraform_env(),
                timeout=120,
            )
            if done.returncode != 0:
                raise TerraformError(_error_text(done.stderr or done.stdout))
        out = subprocess.run(
            [terraform, f"-chdir={work}", "output", "-json", "m"],
            capture_output=True,
            text=True,
            env=terraform_env(),
            check=True,
            timeout=60,
        )
    return json.loads(out.stdout)


def _error_text(text: str) -> str:
    lines = [ln.strip(" │╷╵") for ln in text.splitlines()]
    return " ".join(ln for ln in lines if ln)


def catalog_of(terraform: str, root: Path) -> dict[str, Any]:
    result: dict[str, Any] = evaluate(
        terraform, root, "catalog", {"repo_root": str(root), "ib_logins": SAMPLE_LOGINS}
    )
    return result


# --- the Terraform as written -------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    body: dict[str, Any]
    path: Path

    @property
    def text(self) -> str:
        return json.dumps(self.body)


def tf_files(root: Path) -> list[Path]:
    """Every .tf file once (environments share files through symlinks)."""
    seen: dict[Path, Path] = {}
    for path in sorted((root / "terraform").rglob("*.tf")):
        if ".terraform" not in path.parts:
            seen.setdefault(path.resolve(), path)
    return sorted(seen.values())


def resources(root: Path) -> list[Resource]:
    found: list[Resource] = []
    for path in tf_files(root):
        with path.open(encoding="utf-8") as fh:
            parsed = hcl2.load(fh, serialization_options=_HCL)
        for entry in parsed.get("resource", []):
            for rtype, named in entry.items():
                for name, body in named.items():
                    found.append(Resource(rtype, name, body, path))
    return found


def of_type(blocks: list[Resource], rtype: str) -> list[Resource]:
    return [b for b in blocks if b.type == rtype]


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The first nested block `name` of a body, or {}."""
    value = body.get(name) or [{}]
    first: dict[str, Any] = value[0] if isinstance(value, list) else value
    return first


def dynamic_blocks(body: dict[str, Any]) -> set[str]:
    return {name for entry in body.get("dynamic", []) for name in entry}


# --- the code's view ------------------------------------------------------------------


def python_files(root: Path) -> Iterator[Path]:
    """Modules of the deployed code (the package, functions and any future component)."""
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0] in NOT_DEPLOYED or any(p.startswith(".") for p in parts):
            continue
        yield path


def published_topics(root: Path) -> dict[str, str]:
    """Topic -> where: module constants *_TOPIC and literal first arguments of .publish()."""
    topics: dict[str, str] = {}
    for path in python_files(root):
        where = str(path.relative_to(root))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and _const_str(node.value):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id.endswith("_TOPIC"):
                        topics.setdefault(_const_str(node.value) or "", where)
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "publish"
                and node.args
                and _const_str(node.args[0])
            ):
                topics.setdefault(_const_str(node.args[0]) or "", where)
    return topics


def read_secrets(root: Path) -> dict[str, str]:
    """Secret -> where: Settings fields named *_secret (their defaults) and literal
    arguments of <...>.secrets.get("...")."""
    names: dict[str, str] = {}
    for path in python_files(root):
        where = str(path.relative_to(root))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.target.id.endswith("_secret")
                and node.value is not None
            ):
                default = node.value
                if isinstance(default, ast.Call) and default.args:
                    default = default.args[0]
                if _const_str(default):
                    names.setdefault(_const_str(default) or "", f"{where} ({node.target.id})")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and _names_secrets(node.func.value)
                and node.args
                and _const_str(node.args[0])
            ):
                names.setdefault(_const_str(node.args[0]) or "", where)
    return names


def _names_secrets(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "secrets") or (
        isinstance(node, ast.Name) and node.id == "secrets"
    )


def _const_str(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def entry_points(main: Path) -> dict[str, str]:
    """Function name -> 'cloud_event' | 'http' for the Functions Framework decorators in main.py."""
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(main.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                name = deco.attr if isinstance(deco, ast.Attribute) else getattr(deco, "id", "")
                if name in ("cloud_event", "http"):
                    found[node.name] = name
    return found


# --- the checks -------------------------------------------------------------------------


def problems(terraform: str, root: Path) -> list[str]:
    """Everything that is out of sync at `root`; [] when code and Terraform agree."""
    try:
        catalog = catalog_of(terraform, root)
    except TerraformError as exc:
        return [f"terraform rejects the definitions: {exc}"]
    blocks = resources(root)
    return [
        *function_problems(root, catalog, blocks),
        *exposure_problems(root, catalog, blocks),
        *topic_problems(root, catalog, blocks),
        *schedule_problems(root, catalog, blocks),
        *secret_problems(root, catalog, blocks),
        *firestore_problems(catalog, blocks),
        *iam_problems(blocks),
        *network_problems(blocks),
    ]


def function_problems(root: Path, catalog: dict[str, Any], blocks: list[Resource]) -> list[str]:
    found: list[str] = []
    topology = _topology(root)
    folders = sorted(p.parent.name for p in (root / "functions").glob("*/main.py"))
    functions = catalog["functions"]
    for name in folders:
        if name not in functions:
            found.append(
                f"functions/{name} has no function resource: add functions/{name}/deploy.yaml"
            )
            continue
        spec = functions[name]
        keys = set(spec) - {"service", "account"}
        if missing := DESCRIPTOR_KEYS - keys:
            found.append(f"functions/{name}/deploy.yaml lacks {', '.join(sorted(missing))}")
        if unknown := keys - DESCRIPTOR_KEYS - set(OPTIONAL_DESCRIPTOR_KEYS):
            found.append(
                f"functions/{name}/deploy.yaml has unknown keys {', '.join(sorted(unknown))}"
            )
        decorated = entry_points(root / "functions" / name / "main.py")
        kind = decorated.get(spec.get("entry_point", ""))
        if kind is None:
            found.append(
                f"functions/{name}: entry_point {spec.get('entry_point')!r} is not a decorated "
                f"function of main.py ({', '.join(decorated) or 'none'})"
            )
        elif kind == "http":
            found += _http_trigger_problems(name, spec, topology)
        elif kind == "cloud_event":
            try:
                sub = topology.push_subscription_for(name)
            except KeyError:
                found.append(
                    f"functions/{name}: no push subscription in topics.yaml delivers to it"
                )
            else:
                if spec.get("trigger") != sub.name:
                    found.append(
                        f"functions/{name}: trigger {spec.get('trigger')!r} but topics.yaml "
                        f"delivers to it through {sub.name!r}"
                    )
                if spec.get("timeout_seconds", 0) > sub.ack_deadline_seconds:
                    found.append(
                        f"functions/{name}: timeout {spec['timeout_seconds']} s exceeds the "
                        f"ack deadline of {sub.name} ({sub.ack_deadline_seconds} s)"
                    )
        for topic in spec.get("publishes", []):
            if topic not in catalog["topics"]:
                found.append(f"functions/{name}/deploy.yaml publishes to unknown topic {topic}")
        found += _service_problems(root, name, spec, kind)
    for name in sorted(set(functions) - set(folders)):
        found.append(f"function resource {name} has no functions/{name}/main.py")

    fns = of_type(blocks, "google_cloudfunctions2_function")
    if len(fns) != 1:
        found.append(
            "expected one google_cloudfunctions2_function iterating over the catalog, "
            f"found {len(fns)}"
        )
    for fn in fns:
        build, service = block(fn.body, "build_config"), block(fn.body, "service_config")
        expected = {
            "for_each": (fn.body.get("for_each"), "${local.catalog.functions}"),
            "entry_point": (build.get("entry_point"), "${each.value.entry_point}"),
            # ALLOW_INTERNAL_ONLY unless deploy.yaml says otherwise (the catalog's default)
            "ingress": (service.get("ingress_settings"), "${each.value.ingress}"),
            "concurrency": (
                service.get("max_instance_request_concurrency"),
                "${each.value.concurrency}",
            ),
            "timeout": (service.get("timeout_seconds"), "${each.value.timeout_seconds}"),
            "identity": (
                service.get("service_account_email"),
                "${google_service_account.function[each.key].email}",
            ),
        }
        for what, (actual, wanted) in expected.items():
            if actual != wanted:
                found.append(f"{fn.path.name}: function {what} is {actual!r}, expected {wanted!r}")
        if "event_trigger" in fn.body:
            found.append(
                f"{fn.path.name}: functions take no event_trigger (it cannot carry a dead-letter "
                "policy); their push subscription delivers to them"
            )
    return found


def _http_trigger_problems(name: str, spec: dict[str, Any], topology: Any) -> list[str]:
    """An HTTP entry point: `trigger: http`, and no push subscription (it would POST a
    Pub/Sub envelope to a function that expects a browser's request)."""
    found: list[str] = []
    if spec.get("trigger") != HTTP_TRIGGER:
        found.append(
            f"functions/{name}: its entry point is an HTTP function, so its trigger must be "
            f"{HTTP_TRIGGER!r}, not {spec.get('trigger')!r}"
        )
    try:
        sub = topology.push_subscription_for(name)
    except KeyError:
        pass
    else:
        found.append(
            f"functions/{name}: topics.yaml's push subscription {sub.name!r} delivers to an "
            "HTTP function; Pub/Sub push needs a cloud_event entry point"
        )
    return found


def _service_problems(root: Path, name: str, spec: dict[str, Any], kind: str | None) -> list[str]:
    """Ingress, public access, concurrency and the latency label of one function."""
    found: list[str] = []
    raw = yaml.safe_load((root / "functions" / name / "deploy.yaml").read_text(encoding="utf-8"))
    for key, default in OPTIONAL_DESCRIPTOR_KEYS.items():
        if default is not None and spec.get(key) != raw.get(key, default):
            found.append(
                f"functions/{name}: Terraform's {key} is {spec.get(key)!r} but deploy.yaml "
                f"gives {raw.get(key, default)!r} (default {default!r})"
            )
    ingress, public = spec.get("ingress"), spec.get("public")
    if ingress not in INGRESS_SETTINGS:
        found.append(
            f"functions/{name}: ingress {ingress!r} is not one of {sorted(INGRESS_SETTINGS)}"
        )
    if ingress != INTERNAL_INGRESS and kind != "http":
        found.append(
            f"functions/{name}: ingress {ingress!r} on a cloud_event function: only an HTTP "
            f"function may be reached from outside; push subscriptions need {INTERNAL_INGRESS}"
        )
    if public:
        if kind != "http":
            found.append(
                f"functions/{name}: public (allUsers may invoke) but not an HTTP function: only "
                "an HTTP function that authenticates every request itself may be public"
            )
        if ingress != "ALLOW_ALL":
            found.append(
                f"functions/{name}: public but ingress {ingress!r}: browsers need ALLOW_ALL"
            )
        if not spec.get("health_path"):
            found.append(f"functions/{name}: public but no health_path: nothing watches it is up")
    elif public is not False:
        found.append(f"functions/{name}: public must be true or false, not {public!r}")
    concurrency = spec.get("concurrency")
    if not isinstance(concurrency, int) or not 1 <= concurrency <= 1000:
        found.append(f"functions/{name}: concurrency {concurrency!r} is not an integer in 1-1000")
    elif concurrency > 1 and float(spec.get("cpu", 0)) < 1:
        found.append(f"functions/{name}: concurrency {concurrency} needs cpu >= 1 (Cloud Run)")
    if spec.get("latency_slo") not in LATENCY_SLOS:
        found.append(
            f"functions/{name}: latency_slo {spec.get('latency_slo')!r} is not one of "
            f"{sorted(LATENCY_SLOS)}"
        )
    return found


def exposure_problems(root: Path, catalog: dict[str, Any], blocks: list[Resource]) -> list[str]:
    """allUsers may invoke the public functions and nothing else, through one generated grant."""
    found: list[str] = []
    wanted = sorted(
        p.parent.name
        for p in (root / "functions").glob("*/deploy.yaml")
        if (yaml.safe_load(p.read_text(encoding="utf-8")) or {}).get("public") is True
    )
    if sorted(catalog.get("public_functions", [])) != wanted:
        found.append(
            f"Terraform's public functions {catalog.get('public_functions')} differ from the "
            f"deploy.yaml files saying public: true {wanted}"
        )
    grants = [b for b in blocks if any(m in b.text for m in PUBLIC_MEMBERS)]
    generated = [
        b
        for b in grants
        if b.type == "google_cloud_run_service_iam_member"
        and all(b.body.get(k) == v for k, v in PUBLIC_INVOKER.items())
    ]
    for b in grants:
        if b not in generated:
            found.append(
                f"{b.path.name}: {b.type}.{b.name} grants to allUsers/allAuthenticatedUsers: "
                "only the public functions' invoker grant (for_each over the catalog's "
                "public_functions, roles/run.invoker) may"
            )
    if wanted and len(generated) != 1:
        found.append(
            f"public functions {wanted} need one google_cloud_run_service_iam_member "
            f"{PUBLIC_INVOKER}, found {len(generated)}"
        )
    return found


def topic_problems(root: Path, catalog: dict[str, Any], blocks: list[Resource]) -> list[str]:
    found: list[str] = []
    topology = _topology(root)
    topics, subs = catalog["topics"], catalog["subscriptions"]
    if set(topics) != set(topology.topics):
        found.append(
            f"Terraform's topics differ from topics.yaml's: only in Terraform "
            f"{sorted(set(topics) - set(topology.topics))}, only in code "
            f"{sorted(set(topology.topics) - set(topics))}"
        )
    for name, sub in topology.subscriptions.items():
        tf = subs.get(name)
        code = sub.model_dump(exclude={"name"})
        if tf is None:
            found.append(f"subscription {name} (topics.yaml) is not provisioned")
        elif {k: tf.get(k) for k in code} != code:
            diff = {k: (tf.get(k), v) for k, v in code.items() if tf.get(k) != v}
            found.append(f"subscription {name}: Terraform (left) and topics.yaml disagree: {diff}")
    for name in sorted(set(subs) - set(topology.subscriptions)):
        found.append(f"subscription {name} is provisioned but not in topics.yaml")

    used = published_topics(root)
    used.update({job.topic: f"scheduler/jobs.yaml ({job.name})" for job in _jobs(root).values()})
    for topic, where in sorted(used.items()):
        if topic not in topics:
            found.append(f"topic {topic!r} ({where}) is not provisioned: declare it in topics.yaml")
            continue
        readers = [s for s in subs.values() if s["topic"] == topic]
        if not readers:
            found.append(
                f"topic {topic!r} ({where}) has no subscription: its messages would be lost"
            )
        for sub in readers:
            dlt = sub["dead_letter_topic"]
            if dlt is not None and not any(s["topic"] == dlt for s in subs.values()):
                found.append(f"dead-letter topic {dlt} has no hold subscription")
        if not any(s["dead_letter_topic"] in topics for s in readers):
            found.append(f"topic {topic!r} ({where}) has no subscription with a dead-letter topic")

    want = {
        "google_pubsub_topic": {"for_each": "${local.catalog.topics}", "name": "${each.key}"},
        "google_pubsub_subscription": {
            "for_each": "${local.catalog.subscriptions}",
            "ack_deadline_seconds": "${each.value.ack_deadline_seconds}",
            "enable_exactly_once_delivery": "${each.value.exactly_once}",
        },
    }
    for rtype, attrs in want.items():
        found += _single_generated(blocks, rtype, attrs)
    for sub in of_type(blocks, "google_pubsub_subscription"):
        if not {"dead_letter_policy", "push_config"} <= dynamic_blocks(sub.body):
            found.append(
                f"{sub.path.name}: subscriptions need their dead_letter_policy and push_config"
            )
        if (
            block(sub.body, "retry_policy").get("minimum_backoff")
            != "${each.value.min_backoff_seconds}s"
        ):
            found.append(f"{sub.path.name}: subscriptions need topics.yaml's retry_policy")
        if block(sub.body, "expiration_policy").get("ttl") != "":
            found.append(
                f'{sub.path.name}: subscriptions must never expire (expiration_policy ttl "")'
            )

    agent_subs = sorted(n for n, s in topology.subscriptions.items() if s.pull == AGENT)
    if catalog["agent"]["subscriptions"] != agent_subs:
        found.append(
            f"the agent's subscriptions {catalog['agent']['subscriptions']} != {agent_subs}"
        )
    for name in agent_subs:
        if not topology.subscriptions[name].exactly_once:
            found.append(f"the agent's pull subscription {name} needs exactly_once: true")
    return found


def schedule_problems(root: Path, catalog: dict[str, Any], blocks: list[Resource]) -> list[str]:
    found: list[str] = []
    provisioned = {
        (j["job"], j["schedule"], j["time_zone"], j["topic"])
        for j in catalog["scheduler_jobs"].values()
    }
    wanted = {
        (job.name, cron, job.time_zone, job.topic)
        for job in _jobs(root).values()
        for cron in job.schedules
    }
    for job, cron, tz, topic in sorted(wanted - provisioned):
        found.append(f"schedule {job} '{cron}' ({tz}) -> {topic} has no Cloud Scheduler job")
    for job, cron, tz, _topic in sorted(provisioned - wanted):
        found.append(f"Cloud Scheduler job {job} '{cron}' ({tz}) is not in scheduler/jobs.yaml")
    jobs = of_type(blocks, "google_cloud_scheduler_job")
    generated = [j for j in jobs if j.body.get("for_each") == "${local.catalog.scheduler_jobs}"]
    if len(generated) != 1:
        found.append(
            "expected one google_cloud_scheduler_job iterating over the catalog's scheduler_jobs"
        )
    for job in generated:
        topic = block(job.body, "pubsub_target").get("topic_name", "")
        checks = {
            "schedule": job.body.get("schedule") == "${each.value.schedule}",
            "time_zone": job.body.get("time_zone") == "${each.value.time_zone}",
            "topic": "each.value.topic" in topic,
        }
        for what, ok in checks.items():
            if not ok:
                found.append(f"{job.path.name}: scheduler job {what} must come from the catalog")
    for job in jobs:
        if "local.catalog.scheduler_jobs" not in json.dumps(
            [job.body.get("for_each"), job.body.get("schedule")]
        ):
            found.append(
                f"{job.path.name}: scheduler job {job.name} has a schedule not from "
                "scheduler/jobs.yaml"
            )
    return found


def secret_problems(root: Path, catalog: dict[str, Any], blocks: list[Resource]) -> list[str]:
    found: list[str] = []
    secrets = catalog["secrets"]
    declared = {n for n in secrets if not n.startswith("ib-gateway-")}
    read = read_secrets(root)
    for name, where in sorted(read.items()):
        if name not in secrets:
            found.append(
                f"secret {name!r} ({where}) is not declared: add it with its readers to "
                "shared/spreadpilot/platform/secrets.yaml"
            )
    for name in sorted(declared - set(read)):
        found.append(f"secret {name!r} is declared in secrets.yaml but no code reads it")
    components = set(catalog["functions"]) | {AGENT}
    for name, secret in secrets.items():
        if not secret["readers"]:
            found.append(f"secret {name!r} has no reader")
        for reader in secret["readers"]:
            if reader not in components:
                found.append(f"secret {name!r}: reader {reader!r} is not a component")
    for login in SAMPLE_LOGINS:
        if secrets.get(f"ib-gateway-{login}", {}).get("readers") != [AGENT]:
            found.append(f"IB login {login}'s secret must be readable by {AGENT} only")
    found += _single_generated(
        blocks,
        "google_secret_manager_secret",
        {"for_each": "${local.catalog.secrets}", "secret_id": "${each.key}"},
    )
    found += _single_generated(
        blocks,
        "google_secret_manager_secret_iam_member",
        {
            "for_each": "${local.catalog.secret_readers}",
            "role": "roles/secretmanager.secretAccessor",
        },
    )
    for b in blocks:
        if b.type.startswith("google_project_iam") and "secretmanager" in b.text:
            found.append(f"{b.path.name}: {b.name} grants Secret Manager on the whole project")
        if b.type == "google_cloudfunctions2_function" and "secret_environment_variables" in b.text:
            found.append(
                f"{b.path.name}: functions read secrets from Secret Manager, not env mounts"
            )
    return found


def firestore_problems(catalog: dict[str, Any], blocks: list[Resource]) -> list[str]:
    found: list[str] = []
    if sorted(catalog["ttl_collections"]) != sorted(C.EXPIRES) or catalog["ttl_field"] != EXPIRE_AT:
        found.append(
            f"Firestore TTL policies {catalog['ttl_collections']} on {catalog['ttl_field']!r} "
            f"differ from collections.EXPIRES {list(C.EXPIRES)} on {EXPIRE_AT!r}"
        )
    found += _single_generated(
        blocks, "google_firestore_field", {"for_each": "${toset(local.catalog.ttl_collections)}"}
    )
    return found


def iam_problems(blocks: list[Resource]) -> list[str]:
    found: list[str] = []
    for b in blocks:
        if b.type in ("google_project_iam_member", "google_project_iam_binding"):
            for role in set(re.findall(r"roles/[A-Za-z.]+", b.text)) - PROJECT_ROLES:
                found.append(f"{b.path.name}: {b.name} grants {role} on the whole project")
        if (
            b.type == "google_project_iam_member"
            and "datastore.user" in b.text
            and "condition" not in b.body
        ):
            found.append(
                f"{b.path.name}: {b.name}: Firestore access must be conditioned on the database"
            )
    return found


def network_problems(blocks: list[Resource]) -> list[str]:
    """The IB API is reachable from the VM only: no public IP, no inbound rule but IAP SSH."""
    found: list[str] = []
    for vm in of_type(blocks, "google_compute_instance"):
        for nic in vm.body.get("network_interface", []):
            if "access_config" in nic or "access_config" in dynamic_blocks(nic):
                found.append(f"{vm.path.name}: {vm.name} has a public IP (access_config)")
        if block(vm.body, "shielded_instance_config").get("enable_secure_boot") is not True:
            found.append(f"{vm.path.name}: {vm.name} must be a Shielded VM with secure boot")
        if vm.body.get("metadata", {}).get("enable-oslogin") != "TRUE":
            found.append(f"{vm.path.name}: {vm.name} must use OS Login")
    for rule in of_type(blocks, "google_compute_firewall"):
        if rule.body.get("direction", "INGRESS") != "INGRESS":
            continue
        allows = rule.body.get("allow", [])
        if (
            rule.body.get("source_ranges") != [IAP_RANGE]
            or "deny" in rule.body
            or [(a.get("protocol"), a.get("ports")) for a in allows] != [("tcp", ["22"])]
        ):
            found.append(
                f"{rule.path.name}: inbound rule {rule.name} is not IAP SSH "
                f"({IAP_RANGE} on tcp/22): no other inbound rule may exist"
            )
    if not of_type(blocks, "google_compute_router_nat"):
        found.append("the VM has no way out without a public IP: Cloud NAT is missing")
    return found


def gateway_problems(terraform: str, root: Path) -> list[str]:
    """What the VM will run: every port published on 127.0.0.1, one gateway per login."""
    boot = evaluate(
        terraform,
        root,
        "gateway_boot",
        {
            "project_id": "p",
            "ib_logins": SAMPLE_LOGINS,
            "gateway_image": "gateway:1",
            "agent_image": "us-east4-docker.pkg.dev/p/spreadpilot/agent:1",
            "agent_command": ["spreadpilot", "agent"],
            "agent_environment": {"SPREADPILOT_MODE": "gcp"},
        },
    )
    text = boot["user_data"]
    if not text.startswith("#cloud-config\n"):
        return ["gateway user-data is not a cloud-config document"]
    config = yaml.safe_load(text)
    found: list[str] = []
    published: set[int] = set()
    runs = [
        (f["path"], _exec_start(f["content"]))
        for f in config["write_files"]
        if f["path"].endswith(".service")
    ]
    expected_units = {f"/etc/systemd/system/ib-gateway-{login}.service" for login in SAMPLE_LOGINS}
    if missing := expected_units - {path for path, _ in runs}:
        found.append(f"no gateway unit for {sorted(missing)}")
    for path, argv in runs:
        if (
            "--network" in argv
            and argv[argv.index("--network") + 1] == "host"
            and "agent" not in path
        ):
            found.append(f"{path}: a gateway on the host network would expose its ports")
        for flag, value in itertools.pairwise(argv):
            if flag in ("-p", "--publish"):
                host, _, rest = value.partition(":")
                if host != "127.0.0.1":
                    found.append(f"{path}: publishes {value}, not on the loopback")
                else:
                    published.add(int(rest.split(":")[0]))
            elif flag.startswith("--publish=") or flag == "-P":
                found.append(f"{path}: publishes with {flag}")
    wanted = {v for login in SAMPLE_LOGINS.values() for v in (login["api_port"], login["vnc_port"])}
    if published != wanted:
        found.append(
            f"published loopback ports {sorted(published)} != the logins' {sorted(wanted)}"
        )
    found += agent_gateway_problems(config)
    return found


AGENT_ENV = "/etc/spreadpilot/agent.env"


def agent_env(config: dict[str, Any]) -> dict[str, str]:
    """The agent's environment (docker --env-file: one KEY=VALUE per line) from cloud-init."""
    files = {f["path"]: f["content"] for f in config["write_files"]}
    env: dict[str, str] = {}
    for line in files.get(AGENT_ENV, "").splitlines():
        key, _, value = line.partition("=")
        env[key] = value
    return env


def agent_gateway_problems(config: dict[str, Any]) -> list[str]:
    """SPREADPILOT_GATEWAYS as rendered must be what the agent's own parser accepts,
    one gateway per login on its loopback API port with its clientId and accounts."""
    text = agent_env(config).get(GATEWAYS_ENV)
    if text is None:
        return [f"{AGENT_ENV} has no {GATEWAYS_ENV}: the agent would not start"]
    try:
        gateways = parse_gateways(text)
    except GatewayConfigError as exc:
        return [f"the agent would refuse the rendered {GATEWAYS_ENV} {text}: {exc}"]
    wanted = {
        login: GatewayConfig(
            host="127.0.0.1",
            port=cfg["api_port"],
            client_id=cfg.get("client_id", 7),
            accounts=tuple(cfg.get("accounts", [])),
        )
        for login, cfg in SAMPLE_LOGINS.items()
    }
    if gateways != wanted:
        return [f"{GATEWAYS_ENV} gives the agent {gateways}, expected {wanted} from ib_logins"]
    return []


def _exec_start(unit: str) -> list[str]:
    joined = unit.replace("\\\n", " ")
    for line in joined.splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line.removeprefix("ExecStart="))
    return []


def _single_generated(blocks: list[Resource], rtype: str, attrs: dict[str, str]) -> list[str]:
    found = of_type(blocks, rtype)
    if len(found) != 1:
        return [f"expected one {rtype} generated from the catalog, found {len(found)}"]
    return [
        f"{found[0].path.name}: {rtype}.{key} is {found[0].body.get(key)!r}, expected {value!r}"
        for key, value in attrs.items()
        if found[0].body.get(key) != value
    ]


def _topology(root: Path) -> Any:
    text = (root / "shared/spreadpilot/platform/topics.yaml").read_text(encoding="utf-8")
    return build_topology(yaml.safe_load(text))


def _jobs(root: Path) -> dict[str, Any]:
    return load_jobs(root / "scheduler" / "jobs.yaml")
