variable "project_id" {
  description = "Project whose Secret Manager holds the IB logins' credentials."
  type        = string
}

variable "ib_logins" {
  description = "One IB Gateway container per IB login (see the platform module's ib_logins)."
  type = map(object({
    trading_mode      = string
    api_port          = number
    vnc_port          = number
    auto_restart_time = string
  }))
}

variable "gateway_image" {
  description = "IB Gateway + IBC container image."
  type        = string
}

variable "agent_image" {
  description = "Gateway agent image (issue 4); empty: the agent's unit is installed but does not start."
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
