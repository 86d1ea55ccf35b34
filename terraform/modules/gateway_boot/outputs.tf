output "user_data" {
  description = "cloud-init user-data for the Container-Optimized OS VM."
  value       = local.user_data
}

output "gateway_units" {
  description = "systemd unit name => unit text, one per IB login."
  value       = local.gateway_units
}

output "agent_unit" {
  description = "The agent's systemd unit text."
  value       = local.agent_unit
}
