# The Firestore database (native mode) and the TTL policies of the collections
# whose documents carry `expire_at` (spreadpilot.platform.collections.EXPIRES,
# mirrored by the catalog and held equal by tests/deploy). Daily exports:
# scheduler.tf (firestore_export) into storage.tf's backups bucket.

resource "google_firestore_database" "main" {
  project     = var.project_id
  name        = "(default)"
  location_id = var.firestore_location != "" ? var.firestore_location : var.region
  type        = "FIRESTORE_NATIVE"

  concurrency_mode                  = "PESSIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"

  depends_on = [google_project_service.api]
}

resource "google_firestore_field" "ttl" {
  for_each = toset(local.catalog.ttl_collections)

  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = each.value
  field      = local.catalog.ttl_field

  ttl_config {}

  # A timestamp that only TTL reads needs no index (and an index on it would hotspot).
  index_config {}
}
