# One Cloud Scheduler job per (job, cron) of scheduler/jobs.yaml, publishing
# {"job": NAME} to the job's topic, in the job's time zone. Jobs whose consumer
# does not exist yet publish all the same: their topic's subscription holds the
# ticks (topics.yaml). Cloud Scheduler publishes as its own service agent.

resource "google_cloud_scheduler_job" "job" {
  for_each = local.catalog.scheduler_jobs

  project     = var.project_id
  region      = var.region
  name        = each.key
  description = "${each.value.description} (consumer: ${each.value.consumer})"
  schedule    = each.value.schedule
  time_zone   = each.value.time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.topic[each.value.topic].id
    data       = base64encode(jsonencode({ job = each.value.job }))
    attributes = { job = each.value.job }
  }

  depends_on = [google_project_service.api]
}

# The Firestore export itself, at the `backup` job's time from jobs.yaml: the
# Firestore admin API called directly, into the backups bucket (a prefix per
# run, deleted after backup_retention_days by the bucket's lifecycle rule).
resource "google_cloud_scheduler_job" "firestore_export" {
  project     = var.project_id
  region      = var.region
  name        = "firestore-export"
  description = "Daily managed export of the Firestore database to gs://${google_storage_bucket.backups.name}."
  schedule    = local.catalog.scheduler_jobs["backup"].schedule
  time_zone   = local.catalog.scheduler_jobs["backup"].time_zone

  attempt_deadline = "60s"
  retry_config {
    retry_count          = 3
    min_backoff_duration = "60s"
  }

  http_target {
    http_method = "POST"
    uri         = "https://firestore.googleapis.com/v1/${local.firestore_database}:exportDocuments"
    body        = base64encode(jsonencode({ outputUriPrefix = "gs://${google_storage_bucket.backups.name}" }))
    headers     = { "Content-Type" = "application/json" }

    oauth_token {
      service_account_email = google_service_account.backup.email
      scope                 = "https://www.googleapis.com/auth/datastore"
    }
  }

  depends_on = [google_project_service.api]
}
