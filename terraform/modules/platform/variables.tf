variable "repo_root" {
  description = "Path of the repository root (the environment root passes it)."
  type        = string
}

variable "environment" {
  description = "Environment name, part of every resource name and label."
  type        = string

  validation {
    condition     = contains(["prod", "staging"], var.environment)
    error_message = "environment must be prod or staging."
  }
}

variable "project_id" {
  description = "Google Cloud project that holds the whole system."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id (6-30 lowercase letters, digits, dashes)."
  }
}

variable "region" {
  description = "Region of functions, VM, buckets and scheduler jobs. us-east4 (Virginia) is close to IB's US servers."
  type        = string
  default     = "us-east4"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as us-east4."
  }
}

variable "zone" {
  description = "Zone of the IB Gateway VM; empty means <region>-a."
  type        = string
  default     = ""
}

variable "firestore_location" {
  description = "Firestore location; empty means the region (regional is cheaper than nam5)."
  type        = string
  default     = ""
}

variable "sheet_id" {
  description = "Id of the Google spreadsheet holding the signals (from its URL)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{20,}$", var.sheet_id))
    error_message = "sheet_id must be the spreadsheet id from its URL (.../spreadsheets/d/<id>/edit)."
  }
}

variable "sheet_worksheet" {
  description = "Worksheet (tab) of the signal sheet."
  type        = string
  default     = "Segnali"
}

variable "dry_run" {
  description = "Broker adapter sends whatIf only, routes nothing (SPREADPILOT_DRY_RUN)."
  type        = bool
  default     = false
}

variable "settings" {
  description = "Extra SPREADPILOT_* settings for every function and the agent (never secrets: those go in Secret Manager)."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for k in keys(var.settings) : can(regex("^SPREADPILOT_[A-Z0-9_]+$", k)) && !startswith(k, "SPREADPILOT_SECRET_")
    ])
    error_message = "settings keys must be SPREADPILOT_<NAME> and never SPREADPILOT_SECRET_*: secrets live in Secret Manager."
  }
}

variable "scale_to_zero" {
  description = "Override every function's min_instances with 0 (staging: no idle cost)."
  type        = bool
  default     = false
}

variable "function_source_dir" {
  description = "Folder holding the packaged functions (<name>.zip, built by `make package`); empty means <repo_root>/dist/functions."
  type        = string
  default     = ""
}

variable "ib_logins" {
  description = <<-EOT
    One IB Gateway container per IB login. Adding a follower with a new IB login is one entry:
    key = login id (the follower's gateway_id), api_port/vnc_port = loopback ports on the VM.
    client_id = the fixed IB API clientId the agent connects with (default 7); accounts = the IB
    account ids this login may trade (e.g. ["U1234567"]; empty = any account the login manages).
    The agent receives them as SPREADPILOT_GATEWAYS. The login's credentials go in the secret
    ib-gateway-<key> (created here, value added by the operator).
  EOT
  type = map(object({
    trading_mode      = optional(string, "live")
    api_port          = number
    vnc_port          = number
    auto_restart_time = optional(string, "11:45 PM")
    client_id         = optional(number, 7)
    accounts          = optional(list(string), [])
  }))

  validation {
    condition     = alltrue([for k, v in var.ib_logins : can(regex("^[a-z][a-z0-9-]{0,20}$", k))])
    error_message = "ib_logins keys must be short lowercase ids (letters, digits, dashes): they name a container and a secret."
  }
  validation {
    condition     = alltrue([for v in values(var.ib_logins) : contains(["live", "paper"], v.trading_mode)])
    error_message = "trading_mode must be live or paper."
  }
  validation {
    condition = alltrue([
      for v in values(var.ib_logins) : v.api_port >= 4001 && v.api_port <= 4099 && v.vnc_port >= 5900 && v.vnc_port <= 5999
    ])
    error_message = "api_port must be in 4001-4099 and vnc_port in 5900-5999."
  }
  validation {
    condition     = length(distinct(concat([for v in values(var.ib_logins) : v.api_port], [for v in values(var.ib_logins) : v.vnc_port]))) == 2 * length(var.ib_logins)
    error_message = "every api_port and vnc_port must be distinct."
  }
  validation {
    condition     = alltrue([for v in values(var.ib_logins) : can(regex("^(0?[1-9]|1[0-2]):[0-5][0-9] (AM|PM)$", v.auto_restart_time))])
    error_message = "auto_restart_time is IBC's format, e.g. \"11:45 PM\"."
  }
  validation {
    condition     = alltrue([for v in values(var.ib_logins) : floor(v.client_id) == v.client_id && v.client_id >= 0 && v.client_id <= 2147483647])
    error_message = "client_id must be an integer in 0-2147483647 (the fixed IB API clientId the agent connects with), e.g. 7."
  }
  validation {
    condition     = alltrue([for v in values(var.ib_logins) : alltrue([for a in v.accounts : can(regex("^[A-Za-z0-9]+$", a))])])
    error_message = "accounts must be IB account ids, letters and digits only (e.g. [\"U1234567\"] or [\"DU1234567\"]); [] lets the login trade any account it manages."
  }
}

variable "gateway_image" {
  description = "IB Gateway + IBC image (pin a digest in production)."
  type        = string
  default     = "ghcr.io/gnzsnz/ib-gateway:stable"
}

variable "agent_image" {
  description = "Gateway agent image (runs `spreadpilot agent`; pin a digest in production). Empty: its unit is installed on the VM but not started."
  type        = string
  default     = ""
}

variable "gateway_machine_type" {
  description = "Machine type of the IB Gateway VM (about 1 GB per gateway plus the agent)."
  type        = string
  default     = "e2-medium"

  validation {
    condition     = can(regex("^(e2|n2|n2d|t2d|c3)-(standard|medium|highmem|small)", var.gateway_machine_type))
    error_message = "gateway_machine_type must be a general-purpose type such as e2-medium or e2-standard-2."
  }
}

variable "gateway_disk_gb" {
  description = "Boot disk of the IB Gateway VM, GB."
  type        = number
  default     = 20

  validation {
    condition     = var.gateway_disk_gb >= 10 && var.gateway_disk_gb <= 200
    error_message = "gateway_disk_gb must be 10-200."
  }
}

variable "backup_retention_days" {
  description = "Days a Firestore export is kept in the backups bucket."
  type        = number
  default     = 30

  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 365
    error_message = "backup_retention_days must be 7-365."
  }
}

variable "operators" {
  description = "Who may open an IAP SSH tunnel to the gateway VM (VNC for the 2FA, restarting a gateway): user:/group: members."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.operators : can(regex("^(user|group):[^@ ]+@[^@ ]+$", m))])
    error_message = "operators must be user:EMAIL or group:EMAIL members."
  }
}

variable "alert_emails" {
  description = "Email addresses notified by every alert policy."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alert_emails : can(regex("^[^@ ]+@[^@ ]+\\.[^@ ]+$", e))])
    error_message = "alert_emails must be email addresses."
  }
}

variable "alert_sms_numbers" {
  description = "Phone numbers (E.164, e.g. +393331234567) notified by CRITICAL policies."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for n in var.alert_sms_numbers : can(regex("^\\+[1-9][0-9]{7,14}$", n))])
    error_message = "alert_sms_numbers must be E.164 numbers such as +393331234567."
  }
}

variable "pagerduty_service_key" {
  description = "PagerDuty integration key; empty means no PagerDuty channel."
  type        = string
  default     = ""
  sensitive   = true
}
