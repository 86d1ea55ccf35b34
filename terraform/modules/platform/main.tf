# The whole system in one project: APIs, identities, Pub/Sub, functions,
# schedules, secrets, Firestore, buckets, the IB Gateway VM and monitoring.
# Everything that comes in numbers (topics, subscriptions, functions, jobs,
# secrets, IB logins) is generated from the catalog (modules/catalog), which
# reads the repository's single definitions.

module "catalog" {
  source    = "../catalog"
  repo_root = var.repo_root
  ib_logins = var.ib_logins
}

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  catalog    = module.catalog
  zone       = var.zone != "" ? var.zone : "${var.region}-a"
  source_dir = var.function_source_dir != "" ? var.function_source_dir : "${var.repo_root}/dist/functions"

  labels = {
    app         = "spreadpilot"
    environment = var.environment
    managed-by  = "terraform"
  }

  # Google-managed service agents this configuration grants narrow rights to.
  pubsub_agent     = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  firestore_agent  = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-firestore.iam.gserviceaccount.com"
  monitoring_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-monitoring-notification.iam.gserviceaccount.com"

  # Settings every component shares (non-secret; secrets come from Secret Manager).
  common_settings = merge(
    {
      SPREADPILOT_MODE            = "gcp"
      SPREADPILOT_PROJECT_ID      = var.project_id
      SPREADPILOT_SHEET_ID        = var.sheet_id
      SPREADPILOT_SHEET_WORKSHEET = var.sheet_worksheet
      SPREADPILOT_DRY_RUN         = tostring(var.dry_run)
      SPREADPILOT_LOG_FORMAT      = "json"
    },
    var.settings,
  )

  # The Firestore database's IAM resource name, for conditional role bindings.
  firestore_database = "projects/${var.project_id}/databases/${google_firestore_database.main.name}"
}

resource "google_project_service" "api" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iap.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "sheets.googleapis.com",
    "storage.googleapis.com",
  ])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
