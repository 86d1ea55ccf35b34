# The IB Gateway VM's network: a private subnet with Private Google Access
# (Pub/Sub, Firestore, Secret Manager without a public IP), Cloud NAT for the
# way out (IB's servers, image pulls) and one inbound rule: SSH from Google's
# IAP range. Nothing else can open a connection to the VM, and the IB API ports
# are bound to its loopback anyway (gateway_boot).

resource "google_compute_network" "main" {
  project                 = var.project_id
  name                    = "spreadpilot"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.api]
}

resource "google_compute_subnetwork" "gateway" {
  project                  = var.project_id
  name                     = "spreadpilot-gateway"
  region                   = var.region
  network                  = google_compute_network.main.id
  ip_cidr_range            = "10.10.0.0/28"
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "main" {
  project = var.project_id
  name    = "spreadpilot"
  region  = var.region
  network = google_compute_network.main.id
}

resource "google_compute_router_nat" "main" {
  project                            = var.project_id
  name                               = "spreadpilot"
  router                             = google_compute_router.main.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.gateway.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# The only inbound rule: SSH through Identity-Aware Proxy (35.235.240.0/20),
# for the operator's tunnel to the gateways' VNC during the weekly 2FA.
resource "google_compute_firewall" "iap_ssh" {
  project       = var.project_id
  name          = "spreadpilot-allow-iap-ssh"
  network       = google_compute_network.main.name
  direction     = "INGRESS"
  source_ranges = ["35.235.240.0/20"]

  target_service_accounts = [google_service_account.gateway.email]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
