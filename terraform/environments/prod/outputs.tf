output "console_url" {
  description = "The operator's console (admin_api): status page at /, JSON API under /api/v1. Open it on the phone and log in."
  value       = lookup(module.spreadpilot.public_urls, "admin_api", null)
}

output "function_urls" {
  description = "Function => Cloud Run URL (internal ingress but for the console)."
  value       = module.spreadpilot.function_urls
}

output "function_services" {
  description = "Function => Cloud Run service (staged rollout)."
  value       = module.spreadpilot.function_services
}

output "service_accounts" {
  description = "Component => service account email."
  value       = module.spreadpilot.service_accounts
}

output "secrets_to_fill" {
  description = "Secrets to give a value (README, Secrets)."
  value       = module.spreadpilot.secrets_to_fill
}

output "gateway_vm" {
  description = "The IB Gateway VM and its VNC tunnels."
  value       = module.spreadpilot.gateway_vm
}

output "buckets" {
  description = "Backups and statements buckets."
  value       = module.spreadpilot.buckets
}

output "agent_image_repository" {
  description = "Artifact Registry path for the agent image."
  value       = module.spreadpilot.agent_image_repository
}
