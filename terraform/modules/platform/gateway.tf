# The IB Gateway VM: Container-Optimized OS, no public IP, Shielded VM, OS
# Login, no serial port, its own service account. cloud-init (gateway_boot)
# runs one IB Gateway container under IBC per entry of ib_logins and the agent
# beside them.

module "gateway_boot" {
  source = "../gateway_boot"

  project_id    = var.project_id
  ib_logins     = var.ib_logins
  gateway_image = var.gateway_image
  agent_image   = var.agent_image
  agent_command = local.catalog.agent.command
  agent_environment = merge(local.common_settings, {
    SPREADPILOT_COMPONENT = local.catalog.agent.component
  })
}

resource "google_compute_instance" "gateway" {
  # checkov:skip=CKV_GCP_38:Boot disk holds the OS and IBC settings only (credentials live in Secret Manager and /run tmpfs); a customer-supplied key would have to be supplied by hand at every restart, which the nightly IBC restart and auto-recovery cannot do.
  project      = var.project_id
  name         = "ib-gateway"
  zone         = local.zone
  machine_type = var.gateway_machine_type
  labels       = merge(local.labels, { component = "ib-gateway" })

  # A login change re-renders cloud-init: restart the VM to apply it.
  allow_stopping_for_update = true

  boot_disk {
    initialize_params {
      image = "cos-cloud/cos-stable"
      size  = var.gateway_disk_gb
      type  = "pd-balanced"
    }
  }

  # No access_config block: no public IP. Egress goes through Cloud NAT.
  network_interface {
    subnetwork = google_compute_subnetwork.gateway.id
  }

  service_account {
    email  = google_service_account.gateway.email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    user-data                 = module.gateway_boot.user_data
    enable-oslogin            = "TRUE"
    block-project-ssh-keys    = "true"
    serial-port-enable        = "false"
    google-logging-enabled    = "true"
    google-monitoring-enabled = "true"
    cos-metrics-enabled       = "true"
  }

  depends_on = [google_project_service.api, google_compute_router_nat.main]
}

# Images the VM pulls besides the public gateway image: the agent's (issue 4).
resource "google_artifact_registry_repository" "images" {
  # checkov:skip=CKV_GCP_84:Holds the agent's image (our own code, no secrets); Google-managed encryption at rest is enough.
  project       = var.project_id
  location      = var.region
  repository_id = "spreadpilot"
  format        = "DOCKER"
  description   = "SpreadPilot container images (the gateway agent)."
  labels        = local.labels

  depends_on = [google_project_service.api]
}

resource "google_artifact_registry_repository_iam_member" "gateway_pulls" {
  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.gateway.member
}

# Operators reach the VM only through IAP, as themselves (OS Login, with sudo
# to restart a gateway); the grants are on this VM and its service account only.
resource "google_iap_tunnel_instance_iam_member" "operator_tunnel" {
  for_each = toset(var.operators)

  project  = var.project_id
  zone     = local.zone
  instance = google_compute_instance.gateway.name
  role     = "roles/iap.tunnelResourceAccessor"
  member   = each.value
}

resource "google_compute_instance_iam_member" "operator_login" {
  for_each = toset(var.operators)

  project       = var.project_id
  zone          = local.zone
  instance_name = google_compute_instance.gateway.name
  role          = "roles/compute.osAdminLogin"
  member        = each.value
}

resource "google_service_account_iam_member" "operator_acts_as_gateway" {
  for_each = toset(var.operators)

  service_account_id = google_service_account.gateway.name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}
