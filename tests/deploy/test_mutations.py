"""The consistency checks fail when code and Terraform drift, proven on temporary copies.

Each test copies the repository, changes one thing the way a developer might
(a function, topic, job or secret added in code without its Terraform, or a
Terraform resource removed or loosened), and asserts the checks name it. Two
tests show the other half of the rule: what the definitions declare is
provisioned with no Terraform edit at all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy import consistency as cons

CLOUD_EVENT_FUNCTION = """
import functions_framework


@functions_framework.cloud_event
def risk_check(event):
    return None
"""


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def remove_block(path: Path, header: str) -> None:
    """Delete the HCL block starting with `header` (up to its matching brace)."""
    text = path.read_text(encoding="utf-8")
    start = text.index(header)
    depth = 0
    for end in range(text.index("{", start), len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            break
    path.write_text(text[:start] + text[end + 1 :], encoding="utf-8")


def add_function_folder(root: Path) -> None:
    (root / "functions/risk_check").mkdir()
    (root / "functions/risk_check/main.py").write_text(CLOUD_EVENT_FUNCTION)


def add_descriptor_without_folder(root: Path) -> None:
    (root / "functions/ghost").mkdir()
    (root / "functions/ghost/deploy.yaml").write_text(
        (root / "functions/dispatcher/deploy.yaml").read_text().replace("dispatcher", "ghost")
    )


def rename_entry_point(root: Path) -> None:
    replace(root / "functions/dispatcher/main.py", "def dispatcher(", "def dispatch_signal_event(")


def publish_to_undeclared_topic(root: Path) -> None:
    (root / "shared/spreadpilot/services/marks.py").write_text('MARKS_TOPIC = "marks"\n')


def schedule_onto_undeclared_topic(root: Path) -> None:
    append(
        root / "scheduler/jobs.yaml",
        "  vix-check:\n    description: VIX spike check.\n    schedules: ['*/5 10-15 * * 1-5']\n"
        "    time_zone: America/New_York\n    topic: risk-ticks\n    consumer: risk_check\n",
    )


def read_undeclared_secret(root: Path) -> None:
    (root / "shared/spreadpilot/services/pager.py").write_text(
        "def token(container):\n    return container.secrets.get('pagerduty-routing-key')\n"
    )


def declare_unread_secret(root: Path) -> None:
    append(
        root / "shared/spreadpilot/platform/secrets.yaml",
        "  twilio-auth-token:\n    description: Twilio token.\n    readers: [dispatcher]\n",
    )


def grant_secret_to_a_non_component(root: Path) -> None:
    replace(
        root / "shared/spreadpilot/platform/secrets.yaml",
        "[signal_poller]",
        "[signal_poller, risk_check]",
    )


def mismatch_trigger(root: Path) -> None:
    replace(
        root / "functions/dispatcher/deploy.yaml", "trigger: dispatcher", "trigger: signal-poller"
    )


def timeout_over_ack_deadline(root: Path) -> None:
    replace(
        root / "functions/dispatcher/deploy.yaml", "timeout_seconds: 60", "timeout_seconds: 300"
    )


CONSOLE = "functions/admin_api"


def make_dispatcher_public(root: Path) -> None:
    append(root / "functions/dispatcher/deploy.yaml", "public: true\n")


def open_dispatcher_ingress(root: Path) -> None:
    append(root / "functions/dispatcher/deploy.yaml", "ingress: ALLOW_ALL\n")


def public_cloud_event_past_terraform(root: Path) -> None:
    """The same, with the catalog's own guard removed: the Python checks still catch it."""
    remove_block(
        root / "terraform/modules/catalog/outputs.tf",
        "  precondition {\n    condition     = length(local.bad_exposure)",
    )
    append(root / "functions/dispatcher/deploy.yaml", "ingress: ALLOW_ALL\npublic: true\n")


def console_as_cloud_event(root: Path) -> None:
    replace(
        root / CONSOLE / "main.py", "@functions_framework.http", "@functions_framework.cloud_event"
    )


def push_to_the_console(root: Path) -> None:
    append(
        root / "shared/spreadpilot/platform/topics.yaml",
        "  admin-api:\n    topic: commands\n    push: admin_api\n",
    )


def console_without_health_path(root: Path) -> None:
    replace(root / CONSOLE / "deploy.yaml", "health_path: /api/v1/health\n", "")


def unknown_latency_slo(root: Path) -> None:
    replace(root / CONSOLE / "deploy.yaml", "latency_slo: interactive", "latency_slo: fast")


def audit_ttl_dropped(root: Path) -> None:
    replace(root / "terraform/modules/catalog/main.tf", ', "audit"]', "]")


PLATFORM = "terraform/modules/platform"


def remove(file: str, header: str) -> Callable[[Path], None]:
    return lambda root: remove_block(root / PLATFORM / file, header)


def hand_written_job(root: Path) -> None:
    append(
        root / PLATFORM / "scheduler.tf",
        '\nresource "google_cloud_scheduler_job" "extra" {\n  name     = "extra"\n'
        '  schedule = "0 3 * * *"\n}\n',
    )


def give_the_vm_a_public_ip(root: Path) -> None:
    replace(
        root / PLATFORM / "gateway.tf",
        "subnetwork = google_compute_subnetwork.gateway.id\n",
        "subnetwork = google_compute_subnetwork.gateway.id\n    access_config {}\n",
    )


def open_the_ib_port(root: Path) -> None:
    append(
        root / PLATFORM / "network.tf",
        '\nresource "google_compute_firewall" "ib" {\n  name          = "ib"\n'
        '  network       = "x"\n  source_ranges = ["0.0.0.0/0"]\n'
        '  allow {\n    protocol = "tcp"\n    ports    = ["4001"]\n  }\n}\n',
    )


def ingress_hard_coded(root: Path) -> None:
    replace(
        root / PLATFORM / "functions.tf",
        "ingress_settings                 = each.value.ingress",
        'ingress_settings                 = "ALLOW_ALL"',
    )


def every_function_public(root: Path) -> None:
    replace(
        root / PLATFORM / "functions.tf",
        "for_each = toset(local.catalog.public_functions)",
        "for_each = local.catalog.functions",
    )


def hand_written_public_grant(root: Path) -> None:
    append(
        root / PLATFORM / "functions.tf",
        '\nresource "google_cloudfunctions2_function_iam_member" "open" {\n'
        '  cloud_function = "dispatcher"\n  role           = "roles/cloudfunctions.invoker"\n'
        '  member         = "allUsers"\n}\n',
    )


def grant_project_wide_secrets(root: Path) -> None:
    append(
        root / PLATFORM / "iam.tf",
        '\nresource "google_project_iam_member" "all_secrets" {\n  project = var.project_id\n'
        '  role    = "roles/secretmanager.secretAccessor"\n'
        "  member  = google_service_account.gateway.member\n}\n",
    )


MUTATIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    # code gains something Terraform does not provision
    "function folder without deploy.yaml": (add_function_folder, "risk_check"),
    "entry point renamed in main.py": (rename_entry_point, "entry_point 'dispatcher'"),
    "topic published in code only": (publish_to_undeclared_topic, "'marks'"),
    "job publishing to an undeclared topic": (schedule_onto_undeclared_topic, "risk-ticks"),
    "secret read in code only": (read_undeclared_secret, "'pagerduty-routing-key'"),
    # the definitions and Terraform gain something the code does not have
    "deploy.yaml without a function folder": (add_descriptor_without_folder, "ghost"),
    "secret nobody reads": (declare_unread_secret, "'twilio-auth-token'"),
    "secret reader that is not a component": (grant_secret_to_a_non_component, "risk_check"),
    "trigger that does not deliver to the function": (mismatch_trigger, "dispatcher"),
    "timeout beyond the ack deadline": (timeout_over_ack_deadline, "ack deadline"),
    "hand-written scheduler job": (hand_written_job, "extra"),
    # a Terraform resource removed
    "scheduler jobs removed": (
        remove("scheduler.tf", 'resource "google_cloud_scheduler_job" "job"'),
        "google_cloud_scheduler_job",
    ),
    "function resource removed": (
        remove("functions.tf", 'resource "google_cloudfunctions2_function"'),
        "google_cloudfunctions2_function",
    ),
    "topics removed": (
        remove("pubsub.tf", 'resource "google_pubsub_topic" "topic"'),
        "google_pubsub_topic",
    ),
    "dead-letter policy removed": (
        remove("pubsub.tf", 'dynamic "dead_letter_policy"'),
        "dead_letter_policy",
    ),
    "secret grants removed": (
        remove("secrets.tf", 'resource "google_secret_manager_secret_iam_member"'),
        "google_secret_manager_secret_iam_member",
    ),
    "TTL policies removed": (
        remove("firestore.tf", 'resource "google_firestore_field"'),
        "google_firestore_field",
    ),
    "Cloud NAT removed": (
        remove("network.tf", 'resource "google_compute_router_nat"'),
        "Cloud NAT",
    ),
    # least privilege and the door into the broker
    "public IP on the gateway VM": (give_the_vm_a_public_ip, "public IP"),
    "inbound rule to the IB API": (open_the_ib_port, "inbound rule ib"),
    "project-wide secret access": (grant_project_wide_secrets, "whole project"),
    # who may reach a function: internal and private unless an HTTP function says so
    "public cloud_event function": (make_dispatcher_public, "public needs trigger: http"),
    "ingress opened on a cloud_event function": (
        open_dispatcher_ingress,
        "dispatcher (ingress ALLOW_ALL needs trigger: http)",
    ),
    "public cloud_event function, catalog guard removed": (
        public_cloud_event_past_terraform,
        "functions/dispatcher: public (allUsers may invoke) but not an HTTP function",
    ),
    "console entry point turned cloud_event": (
        console_as_cloud_event,
        "functions/admin_api: no push subscription in topics.yaml delivers to it",
    ),
    "push subscription to an HTTP function": (push_to_the_console, "admin_api"),
    "public function without a health_path": (
        console_without_health_path,
        "public needs a health_path",
    ),
    "unknown latency_slo": (unknown_latency_slo, "latency_slo fast"),
    "audit TTL dropped from the catalog": (audit_ttl_dropped, "Firestore TTL policies"),
    "ingress hard-coded in the function resource": (ingress_hard_coded, "function ingress"),
    "every function invocable by allUsers": (every_function_public, "grants to allUsers"),
    "hand-written allUsers grant": (hand_written_public_grant, "open grants to allUsers"),
}


def test_an_unmodified_copy_is_in_sync(terraform: str, repo_copy: Callable[[], Path]) -> None:
    root = repo_copy()
    assert cons.problems(terraform, root) == []
    assert cons.gateway_problems(terraform, root) == []


@pytest.mark.parametrize("mutate,expected", MUTATIONS.values(), ids=list(MUTATIONS))
def test_the_checks_fail_on_a_copy_that_drifted(
    terraform: str, repo_copy: Callable[[], Path], mutate: Callable[[Path], None], expected: str
) -> None:
    root = repo_copy()
    mutate(root)
    found = cons.problems(terraform, root)
    assert any(expected in problem for problem in found), found


def test_a_gateway_port_off_the_loopback_fails(
    terraform: str, repo_copy: Callable[[], Path]
) -> None:
    root = repo_copy()
    replace(
        root / "terraform/modules/gateway_boot/templates/ib-gateway.service.tftpl",
        "-p 127.0.0.1:${api_port}:",
        "-p ${api_port}:",
    )
    assert any("not on the loopback" in p for p in cons.gateway_problems(terraform, root))


def test_gateways_the_agent_cannot_parse_fail(
    terraform: str, repo_copy: Callable[[], Path]
) -> None:
    root = repo_copy()
    replace(
        root / "terraform/modules/gateway_boot/main.tf",
        "client_id = cfg.client_id\n",
        "client_id = -1\n",
    )
    assert any(
        "the agent would refuse the rendered SPREADPILOT_GATEWAYS" in p and "client_id" in p
        for p in cons.gateway_problems(terraform, root)
    )


def test_gateways_rendered_as_host_port_strings_fail(
    terraform: str, repo_copy: Callable[[], Path]
) -> None:
    """The old rendering {"alice": "127.0.0.1:4001"}: the agent refuses to start on it."""
    root = repo_copy()
    main = root / "terraform/modules/gateway_boot/main.tf"
    text = main.read_text(encoding="utf-8")
    start = text.index("SPREADPILOT_GATEWAYS = jsonencode({")
    end = text.index("})", start) + 2
    main.write_text(
        text[:start]
        + "SPREADPILOT_GATEWAYS = jsonencode("
        + '{ for login, cfg in var.ib_logins : login => "127.0.0.1:${cfg.api_port}" })'
        + text[end:],
        encoding="utf-8",
    )
    assert any(
        "must be an object with host, port, client_id, accounts" in p
        for p in cons.gateway_problems(terraform, root)
    )


def test_a_new_job_on_a_declared_topic_is_provisioned_with_no_terraform_edit(
    terraform: str, repo_copy: Callable[[], Path]
) -> None:
    root = repo_copy()
    append(
        root / "scheduler/jobs.yaml",
        "  vix-check:\n    description: VIX spike check.\n"
        "    schedules: ['*/5 10-15 * * 1-5', '0 16 * * 1-5']\n"
        "    time_zone: America/New_York\n    topic: commands\n    consumer: gateway-agent\n",
    )
    catalog = cons.catalog_of(terraform, root)
    assert catalog["scheduler_jobs"]["vix-check-1"]["schedule"] == "*/5 10-15 * * 1-5"
    assert catalog["scheduler_jobs"]["vix-check-2"]["time_zone"] == "America/New_York"
    assert cons.problems(terraform, root) == []


def test_a_new_function_with_its_descriptor_and_subscription_is_provisioned(
    terraform: str, repo_copy: Callable[[], Path]
) -> None:
    root = repo_copy()
    add_function_folder(root)
    (root / "functions/risk_check/deploy.yaml").write_text(
        (root / "functions/dispatcher/deploy.yaml")
        .read_text()
        .replace("entry_point: dispatcher", "entry_point: risk_check")
        .replace("trigger: dispatcher", "trigger: risk-check")
    )
    append(
        root / "shared/spreadpilot/platform/topics.yaml",
        "  risk-check:\n    topic: commands\n    push: risk_check\n",
    )
    assert cons.problems(terraform, root) == []
    catalog = cons.catalog_of(terraform, root)
    assert catalog["functions"]["risk_check"]["account"] == "fn-risk-check"
    assert "risk-check-dead-letter" in catalog["topics"]
    assert catalog["function_publishes"]["risk_check"] == [
        "alerts",
        "orders",
        "risk-check-dead-letter",
    ]
