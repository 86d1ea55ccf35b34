# One gen2 Cloud Function per functions/<name>/ folder, configured by its
# deploy.yaml. The source is the zip `make package` builds (main.py + the
# spreadpilot package + requirements.txt), uploaded under its content hash so a
# code change is a new object and a new revision.
#
# No Eventarc trigger: a cloud_event function is reached only through its push
# subscription (pubsub.tf), whose retry policy and dead-letter topic come from
# topics.yaml. Ingress is internal unless deploy.yaml says otherwise: Pub/Sub
# push and uptime checks of this project reach it, the internet does not. The
# one exception is an HTTP function (`trigger: http`) with `ingress: ALLOW_ALL`
# and `public: true` (the operator's console, admin_api): browsers reach it
# without a Google identity, and it authenticates every request itself.
#
# New revisions get no traffic (all_traffic_on_latest_revision = false): the
# staged rollout (deploy/rollout.py, cloudbuild.yaml) smoke-tests them and moves
# traffic 10% -> 50% -> 100%.

resource "google_storage_bucket_object" "function_source" {
  for_each = local.catalog.functions

  bucket = google_storage_bucket.sources.name
  name   = "functions/${each.key}-${fileexists("${local.source_dir}/${each.key}.zip") ? filemd5("${local.source_dir}/${each.key}.zip") : "missing"}.zip"
  source = "${local.source_dir}/${each.key}.zip"

  lifecycle {
    precondition {
      condition     = fileexists("${local.source_dir}/${each.key}.zip")
      error_message = "${local.source_dir}/${each.key}.zip is missing: run `make package` before plan."
    }
  }
}

resource "google_cloudfunctions2_function" "function" {
  # checkov:skip=CKV_GCP_124:Ingress is per function from deploy.yaml, ALLOW_INTERNAL_ONLY by default; only the public HTTP console (admin_api) is ALLOW_ALL, for the operator's phone, and tests/deploy fail a cloud_event function that opens it.
  for_each = local.catalog.functions

  project     = var.project_id
  location    = var.region
  name        = each.value.service
  description = each.value.description
  labels      = merge(local.labels, { component = each.value.service, latency-slo = each.value.latency_slo })

  build_config {
    runtime         = "python311"
    entry_point     = each.value.entry_point
    service_account = google_service_account.builder.id
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.function_source[each.key].name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.function[each.key].email
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    timeout_seconds                  = each.value.timeout_seconds
    min_instance_count               = var.scale_to_zero ? 0 : each.value.min_instances
    max_instance_count               = each.value.max_instances
    max_instance_request_concurrency = each.value.concurrency
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = false
    environment_variables = merge(local.common_settings, {
      LOG_EXECUTION_ID = "true"
    })
  }

  depends_on = [google_project_service.api, google_project_iam_member.builder]
}

# Pub/Sub push may invoke the functions a subscription delivers to; for
# functions with a health_path, the uptime checks may too.
resource "google_cloud_run_service_iam_member" "push_invoker" {
  for_each = { for name, fn in local.catalog.functions : name => fn if contains(keys(local.catalog.subscriptions), fn.trigger) }

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

resource "google_cloud_run_service_iam_member" "uptime_invoker" {
  for_each = { for name, fn in local.catalog.functions : name => fn if try(fn.health_path, null) != null }

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function[each.key].name
  role     = "roles/run.invoker"
  member   = local.monitoring_agent
}

# Anyone may invoke the functions whose deploy.yaml says `public: true` (the
# catalog allows it only for HTTP functions with ALLOW_ALL ingress and a
# health_path): a phone browser cannot present a Google identity token, so the
# function itself is the gate (admin_api: password login -> signed short-lived
# token, PIN for dangerous actions, every action audited).
resource "google_cloud_run_service_iam_member" "public_invoker" {
  # checkov:skip=CKV_GCP_102:Only `public: true` HTTP functions (the operator's console): browsers cannot send Google identity tokens, so the app authenticates every request itself (login token, PIN, audit); every other function stays private.
  for_each = toset(local.catalog.public_functions)

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function[each.key].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
