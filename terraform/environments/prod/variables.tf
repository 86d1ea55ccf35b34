# Inputs of an environment. Descriptions and validation live in
# modules/platform/variables.tf (one definition); these pass them through.

variable "project_id" {
  description = "Google Cloud project of this environment (one project per environment)."
  type        = string
}

variable "region" {
  description = "Region of functions, VM, buckets and jobs."
  type        = string
  default     = "us-east4"
}

variable "zone" {
  description = "Zone of the IB Gateway VM; empty means <region>-a."
  type        = string
  default     = ""
}

variable "firestore_location" {
  description = "Firestore location; empty means the region."
  type        = string
  default     = ""
}

variable "sheet_id" {
  description = "Id of the signal spreadsheet."
  type        = string
}

variable "sheet_worksheet" {
  description = "Worksheet (tab) of the signal sheet."
  type        = string
  default     = "Segnali"
}

variable "dry_run" {
  description = "whatIf only, nothing routed to IB."
  type        = bool
  default     = false
}

variable "settings" {
  description = "Extra SPREADPILOT_* settings (never secrets)."
  type        = map(string)
  default     = {}
}

variable "ib_logins" {
  description = "One IB Gateway per IB login: key => {trading_mode, api_port, vnc_port, auto_restart_time, client_id, accounts} (see the platform module)."
  type = map(object({
    trading_mode      = optional(string, "live")
    api_port          = number
    vnc_port          = number
    auto_restart_time = optional(string, "11:45 PM")
    client_id         = optional(number, 7)
    accounts          = optional(list(string), [])
  }))
}

variable "gateway_image" {
  description = "IB Gateway + IBC image (pin a digest)."
  type        = string
  default     = "ghcr.io/gnzsnz/ib-gateway:stable"
}

variable "agent_image" {
  description = "Gateway agent image (runs `spreadpilot agent`; pin a digest). Empty: its unit is installed on the VM but not started."
  type        = string
  default     = ""
}

variable "gateway_machine_type" {
  description = "Machine type of the IB Gateway VM."
  type        = string
  default     = "e2-medium"
}

variable "gateway_disk_gb" {
  description = "Boot disk of the IB Gateway VM, GB."
  type        = number
  default     = 20
}

variable "backup_retention_days" {
  description = "Days a Firestore export is kept."
  type        = number
  default     = 30
}

variable "operators" {
  description = "user:/group: members allowed an IAP SSH tunnel to the gateway VM."
  type        = list(string)
  default     = []
}

variable "alert_emails" {
  description = "Emails notified by every alert policy."
  type        = list(string)
  default     = []
}

variable "alert_sms_numbers" {
  description = "E.164 numbers notified by CRITICAL policies."
  type        = list(string)
  default     = []
}

variable "pagerduty_service_key" {
  description = "PagerDuty integration key; empty for none."
  type        = string
  default     = ""
  sensitive   = true
}
