# Staging: paper logins, every function scales to zero (no idle cost).
module "spreadpilot" {
  source = "../../modules/platform"

  repo_root   = abspath("${path.root}/../../..")
  environment = "staging"

  project_id            = var.project_id
  region                = var.region
  zone                  = var.zone
  firestore_location    = var.firestore_location
  sheet_id              = var.sheet_id
  sheet_worksheet       = var.sheet_worksheet
  dry_run               = var.dry_run
  settings              = var.settings
  ib_logins             = var.ib_logins
  gateway_image         = var.gateway_image
  agent_image           = var.agent_image
  gateway_machine_type  = var.gateway_machine_type
  gateway_disk_gb       = var.gateway_disk_gb
  backup_retention_days = var.backup_retention_days
  operators             = var.operators
  alert_emails          = var.alert_emails
  alert_sms_numbers     = var.alert_sms_numbers
  pagerduty_service_key = var.pagerduty_service_key
  scale_to_zero         = true
}
