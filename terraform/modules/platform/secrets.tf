# Secret Manager secrets: names and readers only, never values. The operator
# adds each value (README, "Secrets"). Each secret is readable by exactly the
# components secrets.yaml (or, for IB logins, the gateway VM) names.

resource "google_secret_manager_secret" "secret" {
  for_each = local.catalog.secrets

  project   = var.project_id
  secret_id = each.key
  labels    = local.labels
  annotations = {
    description = each.value.description
  }

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }

  depends_on = [google_project_service.api]
}

locals {
  component_members = merge(
    { for name, _ in local.catalog.functions : name => google_service_account.function[name].member },
    { (local.catalog.agent.component) = google_service_account.gateway.member },
  )
}

resource "google_secret_manager_secret_iam_member" "reader" {
  for_each = local.catalog.secret_readers

  project   = var.project_id
  secret_id = google_secret_manager_secret.secret[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.component_members[each.value.reader]
}
