variable "project_id" {
  description = "Project whose Secret Manager holds the IB logins' credentials."
  type        = string
}

variable "ib_logins" {
  description = "One IB Gateway container per IB login (see the platform module's ib_logins); key = the followers' gateway_id."
  type = map(object({
    trading_mode      = string
    api_port          = number
    vnc_port          = number
    auto_restart_time = string
    client_id         = optional(number, 7)
    accounts          = optional(list(string), [])
  }))

  # Repeated from the platform module: what the agent would refuse at start.
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
  description = "IB Gateway + IBC container image."
  type        = string
}

variable "agent_image" {
  description = "Gateway agent image (runs `spreadpilot agent`); empty: the agent's unit is installed but does not start."
  type        = string
}

variable "agent_command" {
  description = "Command the agent's container runs."
  type        = list(string)
}

variable "agent_environment" {
  description = "Environment of the agent's container (non-secret settings only)."
  type        = map(string)
}

variable "secret_prefix" {
  description = "Secret name of login <key> is <secret_prefix><key>."
  type        = string
  default     = "ib-gateway-"
}
