# One service account per component, each with only the roles it uses.
# Topic, subscription and secret grants are on those resources (pubsub.tf,
# secrets.tf); Firestore is the only project-level data role, and it is
# conditioned on this system's database.

resource "google_service_account" "function" {
  for_each = local.catalog.functions

  project      = var.project_id
  account_id   = each.value.account
  display_name = "SpreadPilot function ${each.key}"
  description  = each.value.description
}

resource "google_service_account" "gateway" {
  project      = var.project_id
  account_id   = local.catalog.agent.component
  display_name = "SpreadPilot IB Gateway VM and agent"
  description  = local.catalog.agent.description
}

resource "google_service_account" "push" {
  project      = var.project_id
  account_id   = "pubsub-push"
  display_name = "Identity of Pub/Sub push deliveries to the functions"
}

resource "google_service_account" "builder" {
  project      = var.project_id
  account_id   = "function-builder"
  display_name = "Builds the functions' images (Cloud Build)"
}

resource "google_service_account" "backup" {
  project      = var.project_id
  account_id   = "firestore-backup"
  display_name = "Starts the daily Firestore export (Cloud Scheduler)"
}

locals {
  # Who reads and writes Firestore documents: functions that say so, and the agent.
  firestore_users = merge(
    { for name, fn in local.catalog.functions : "function/${name}" => google_service_account.function[name].member if fn.firestore },
    local.catalog.agent.firestore ? { "gateway-agent" = google_service_account.gateway.member } : {},
  )
}

resource "google_project_iam_member" "firestore_user" {
  for_each = local.firestore_users

  project = var.project_id
  role    = "roles/datastore.user"
  member  = each.value

  condition {
    title       = "spreadpilot-database-only"
    description = "Documents of this system's Firestore database only."
    expression  = "resource.name == \"${local.firestore_database}\""
  }
}

# The VM writes its containers' logs (gcplogs driver) and metrics.
resource "google_project_iam_member" "gateway_observability" {
  for_each = toset(["roles/logging.logWriter", "roles/monitoring.metricWriter"])

  project = var.project_id
  role    = each.value
  member  = google_service_account.gateway.member
}

# Gen2 functions build in Cloud Build as this account: it writes build logs and
# the function images (gcf-artifacts); it reads the sources bucket (storage.tf).
resource "google_project_iam_member" "builder" {
  for_each = toset(["roles/logging.logWriter", "roles/artifactregistry.writer"])

  project = var.project_id
  role    = each.value
  member  = google_service_account.builder.member
}

# Starting exports is all the backup account can do; the export itself is
# written by Firestore's service agent (storage.tf).
resource "google_project_iam_member" "backup_export" {
  project = var.project_id
  role    = "roles/datastore.importExportAdmin"
  member  = google_service_account.backup.member
}

# Pub/Sub signs push requests as the push account (needed for projects created
# before April 2021; harmless after), scoped to that one account.
resource "google_service_account_iam_member" "pubsub_signs_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}
