"""The Terraform provisions exactly what the code needs (offline: no provider is downloaded).

See tests/deploy/consistency.py for how the two views are compared, and
test_mutations.py for the proof that these checks fail when either side drifts.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.agent import GatewayConfig, parse_gateways
from spreadpilot.platform import collections as C
from spreadpilot.platform.schedules import jobs
from spreadpilot.platform.topology import topology
from tests.deploy import consistency as cons
from tests.deploy.conftest import REPO


@pytest.fixture(scope="module")
def catalog(terraform: str) -> dict[str, Any]:
    return cons.catalog_of(terraform, REPO)


@pytest.fixture(scope="module")
def blocks() -> list[cons.Resource]:
    return cons.resources(REPO)


def test_terraform_is_formatted(terraform: str) -> None:
    done = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(REPO / "terraform")],
        capture_output=True,
        text=True,
        env=cons.terraform_env(),
    )
    assert done.returncode == 0, f"run `terraform fmt -recursive terraform`:\n{done.stdout}"


def test_code_and_terraform_agree(terraform: str) -> None:
    assert cons.problems(terraform, REPO) == []


def test_every_function_folder_is_one_function_with_its_entry_point_and_trigger(
    catalog: dict[str, Any],
) -> None:
    folders = sorted(p.parent.name for p in (REPO / "functions").glob("*/main.py"))
    assert folders == sorted(catalog["functions"])
    assert {"dispatcher", "recorder", "signal_poller"} <= set(folders)
    for name in folders:
        spec = catalog["functions"][name]
        kind = cons.entry_points(REPO / "functions" / name / "main.py")[spec["entry_point"]]
        if kind == "cloud_event":
            assert topology().push_subscription_for(name).name == spec["trigger"]
        else:  # an HTTP function: no subscription delivers to it
            assert kind == "http" and spec["trigger"] == "http", name
            with pytest.raises(KeyError):
                topology().push_subscription_for(name)
    assert catalog["function_publishes"]["dispatcher"] == [
        "alerts",
        "dispatcher-dead-letter",
        "orders",
    ]


def test_only_the_console_is_reachable_from_outside_and_by_anyone(
    catalog: dict[str, Any], blocks: list[cons.Resource]
) -> None:
    functions = catalog["functions"]
    exposed = {n: (f["ingress"], f["public"]) for n, f in functions.items()}
    assert exposed.pop("admin_api") == ("ALLOW_ALL", True)
    assert set(exposed.values()) == {("ALLOW_INTERNAL_ONLY", False)}
    assert catalog["public_functions"] == ["admin_api"]
    console = functions["admin_api"]
    assert console["trigger"] == "http" and console["health_path"] == "/api/v1/health"
    assert console["latency_slo"] == "interactive" and console["concurrency"] > 1
    assert {n for n, f in functions.items() if f["concurrency"] != 1} == {"admin_api"}
    # it publishes what the console does, and has no dead-letter topic (no subscription)
    assert catalog["function_publishes"]["admin_api"] == ["alerts", "commands", "orders", "signals"]
    # the one grant to allUsers, generated from the catalog's public functions
    public = [b for b in blocks if any(m in b.text for m in cons.PUBLIC_MEMBERS)]
    assert [(b.type, b.name) for b in public] == [
        ("google_cloud_run_service_iam_member", "public_invoker")
    ]
    assert cons.exposure_problems(REPO, catalog, blocks) == []


def test_the_audit_rows_expire_like_every_collection_of_expires(catalog: dict[str, Any]) -> None:
    assert "audit" in catalog["ttl_collections"]
    assert sorted(catalog["ttl_collections"]) == sorted(C.EXPIRES)


def test_every_cron_of_every_job_is_a_scheduler_job_in_its_time_zone(
    catalog: dict[str, Any],
) -> None:
    provisioned = sorted(
        (j["job"], j["schedule"], j["time_zone"], j["topic"])
        for j in catalog["scheduler_jobs"].values()
    )
    expected = sorted(
        (job.name, cron, job.time_zone, job.topic)
        for job in jobs().values()
        for cron in job.schedules
    )
    assert provisioned == expected
    assert catalog["scheduler_jobs"]["signal-poll"]["time_zone"] == "America/New_York"
    assert {"time-value-check-1", "time-value-check-2", "eod-check-1", "eod-check-2"} <= set(
        catalog["scheduler_jobs"]
    )


def test_topics_and_subscriptions_match_topics_yaml_dead_letters_included(
    catalog: dict[str, Any],
) -> None:
    topo = topology()
    assert set(catalog["topics"]) == set(topo.topics)
    for name, sub in topo.subscriptions.items():
        assert catalog["subscriptions"][name] == sub.model_dump(exclude={"name"}), name
    for name in ("agent-orders", "agent-commands"):
        assert catalog["subscriptions"][name]["pull"] == "gateway-agent"
        assert catalog["subscriptions"][name]["exactly_once"] is True
    assert catalog["agent"]["subscriptions"] == ["agent-commands", "agent-orders"]


def test_each_secret_is_readable_only_by_its_readers(catalog: dict[str, Any]) -> None:
    readers = {key: r["reader"] for key, r in catalog["secret_readers"].items()}
    assert readers["sheets-service-account/signal_poller"] == "signal_poller"
    assert [k for k in readers if k.startswith("sheets-service-account/")] == [
        "sheets-service-account/signal_poller"
    ]
    assert catalog["function_secrets"] == {
        "admin_api": ["admin-password-hash", "admin-pin-hash", "admin-token-secret"],
        "alert_router": ["sendgrid-api-key", "telegram-bot-token"],
        "commission_mailer": ["sendgrid-api-key"],
        "dispatcher": [],
        "health_ping": [],
        "pnl_rollup": [],
        "recorder": [],
        "signal_poller": ["sheets-service-account"],
    }
    assert catalog["secrets"]["ib-gateway-alice"]["readers"] == ["gateway-agent"]
    # the console's names come from Settings fields *_secret (their defaults)
    read = cons.read_secrets(REPO)
    for field, secret in (
        ("admin_password_hash_secret", "admin-password-hash"),
        ("admin_pin_hash_secret", "admin-pin-hash"),
        ("admin_token_secret", "admin-token-secret"),
    ):
        assert read[secret] == f"shared/spreadpilot/platform/settings.py ({field})"


def test_ib_api_is_unreachable_from_outside_the_vm(
    terraform: str, blocks: list[cons.Resource]
) -> None:
    vms = cons.of_type(blocks, "google_compute_instance")
    assert len(vms) == 1
    assert all("access_config" not in nic for nic in vms[0].body["network_interface"])
    inbound = [
        r
        for r in cons.of_type(blocks, "google_compute_firewall")
        if r.body.get("direction", "INGRESS") == "INGRESS"
    ]
    assert [(r.body["source_ranges"], r.body["allow"]) for r in inbound] == [
        (["35.235.240.0/20"], [{"protocol": "tcp", "ports": ["22"]}])
    ]
    assert cons.network_problems(blocks) == []
    assert cons.gateway_problems(terraform, REPO) == []


def test_the_gateway_vm_runs_one_gateway_per_login_under_ibc_and_the_agent(terraform: str) -> None:
    inputs = {
        "project_id": "p",
        "ib_logins": cons.SAMPLE_LOGINS,
        "gateway_image": "gateway:1",
        "agent_image": "",
        "agent_command": ["spreadpilot", "agent"],
        "agent_environment": {"SPREADPILOT_MODE": "gcp"},
    }
    boot = cons.evaluate(terraform, REPO, "gateway_boot", inputs)
    units = boot["gateway_units"]
    assert sorted(units) == ["ib-gateway-alice.service", "ib-gateway-bob.service"]
    alice = cons._exec_start(units["ib-gateway-alice.service"])
    assert "AUTO_RESTART_TIME=11:45 PM" in alice and "TRADING_MODE=live" in alice
    assert "127.0.0.1:4001:4003" in alice  # live API
    assert "127.0.0.1:4002:4004" in cons._exec_start(units["ib-gateway-bob.service"])  # paper
    assert "fetch-secret.sh p ib-gateway-alice" in units["ib-gateway-alice.service"]
    agent = cons._exec_start(boot["agent_unit"])
    assert agent[-2:] == ["spreadpilot", "agent"] and "host" in agent
    # No agent image set: its unit is installed, never started.
    config = yaml.safe_load(boot["user_data"])
    assert ["systemctl", "start", "ib-gateway-bob.service"] in config["runcmd"]
    assert not [cmd for cmd in config["runcmd"] if "spreadpilot-agent.service" in cmd]
    assert "/etc/systemd/system/spreadpilot-agent.service" in {
        f["path"] for f in config["write_files"]
    }


BOOT_INPUTS: dict[str, Any] = {
    "project_id": "p",
    "gateway_image": "gateway:1",
    "agent_image": "us-east4-docker.pkg.dev/p/spreadpilot/agent:1",
    "agent_command": ["spreadpilot", "agent"],
    "agent_environment": {"SPREADPILOT_MODE": "gcp"},
}


def rendered_gateways(terraform: str, logins: dict[str, Any]) -> dict[str, GatewayConfig]:
    """SPREADPILOT_GATEWAYS from the VM's /etc/spreadpilot/agent.env, parsed by the agent."""
    boot = cons.evaluate(terraform, REPO, "gateway_boot", {**BOOT_INPUTS, "ib_logins": logins})
    env = cons.agent_env(yaml.safe_load(boot["user_data"]))
    assert env["SPREADPILOT_MODE"] == "gcp"
    return parse_gateways(env["SPREADPILOT_GATEWAYS"])


def test_the_agent_parses_the_gateways_the_vm_gives_it(terraform: str) -> None:
    gateways = rendered_gateways(terraform, cons.SAMPLE_LOGINS)
    assert gateways == {
        "alice": GatewayConfig(host="127.0.0.1", port=4001, client_id=7, accounts=("U1234567",)),
        "bob": GatewayConfig(
            host="127.0.0.1", port=4002, client_id=12, accounts=("DU1234567", "DU7654321")
        ),
    }
    for login, cfg in cons.SAMPLE_LOGINS.items():  # keys = the followers' gateway_id
        assert gateways[login].port == cfg["api_port"]


def test_client_id_and_accounts_default_to_7_and_any_account(terraform: str) -> None:
    logins = {
        login: {k: v for k, v in cfg.items() if k not in ("client_id", "accounts")}
        for login, cfg in cons.SAMPLE_LOGINS.items()
    }
    gateways = rendered_gateways(terraform, logins)
    assert {gid: (gw.client_id, gw.accounts) for gid, gw in gateways.items()} == {
        "alice": (7, ()),
        "bob": (7, ()),
    }


#: What the agent would refuse (or the wrong thing), and the field terraform must name.
BAD_LOGIN_FIELDS = {
    "negative client_id": ({"client_id": -1}, "client_id must be an integer in 0-2147483647"),
    "fractional client_id": ({"client_id": 7.5}, "client_id must be an integer in 0-2147483647"),
    "client_id over int32": (
        {"client_id": 2147483648},
        "client_id must be an integer in 0-2147483647",
    ),
    "account with a dash": ({"accounts": ["U-1234567"]}, "accounts must be IB account ids"),
    "empty account": ({"accounts": [""]}, "accounts must be IB account ids"),
}


def platform_inputs_module(root: Path) -> Path:
    """A provider-free module holding only the platform module's variables (their validations)."""
    module = root / "terraform" / "modules" / "platform_inputs"
    module.mkdir(parents=True)
    shutil.copy(REPO / "terraform/modules/platform/variables.tf", module / "variables.tf")
    return root


def with_bad_field(change: dict[str, Any]) -> dict[str, Any]:
    logins = {login: dict(cfg) for login, cfg in cons.SAMPLE_LOGINS.items()}
    logins["bob"].update(change)
    return logins


PLATFORM_INPUTS = {
    "repo_root": str(REPO),
    "environment": "prod",
    "project_id": "spreadpilot-prod",
    "sheet_id": "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg",
}


def test_the_platform_accepts_the_sample_logins(terraform: str, tmp_path: Path) -> None:
    """So a refusal below is the bad field's, not the other inputs'."""
    root = platform_inputs_module(tmp_path)
    inputs = {**PLATFORM_INPUTS, "ib_logins": cons.SAMPLE_LOGINS}
    assert cons.evaluate(terraform, root, "platform_inputs", inputs) == {}


@pytest.mark.parametrize("change,message", BAD_LOGIN_FIELDS.values(), ids=list(BAD_LOGIN_FIELDS))
def test_terraform_refuses_a_bad_client_id_or_account_naming_the_field(
    terraform: str, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    logins = with_bad_field(change)
    with pytest.raises(cons.TerraformError, match=message):
        cons.evaluate(terraform, REPO, "gateway_boot", {**BOOT_INPUTS, "ib_logins": logins})
    root = platform_inputs_module(tmp_path)
    with pytest.raises(cons.TerraformError, match=message):
        cons.evaluate(terraform, root, "platform_inputs", {**PLATFORM_INPUTS, "ib_logins": logins})
