variable "repo_root" {
  description = "Path of the repository root, where functions/, scheduler/ and shared/ live."
  type        = string

  validation {
    condition     = fileexists("${var.repo_root}/scheduler/jobs.yaml")
    error_message = "repo_root must be the repository root (scheduler/jobs.yaml not found there)."
  }
}

variable "ib_logins" {
  description = "IB logins served by the gateway VM (see the platform module's ib_logins)."
  type        = map(any)
  default     = {}
}
