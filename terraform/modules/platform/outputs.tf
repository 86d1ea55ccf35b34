output "function_urls" {
  description = "Function name => its Cloud Run URL (internal ingress unless its deploy.yaml says otherwise)."
  value       = { for name, fn in google_cloudfunctions2_function.function : name => fn.service_config[0].uri }
}

output "public_urls" {
  description = "Public function => its URL on the internet (admin_api: the operator's console, status page at /)."
  value       = { for name in local.catalog.public_functions : name => google_cloudfunctions2_function.function[name].service_config[0].uri }
}

output "function_services" {
  description = "Function name => Cloud Run service the staged rollout moves traffic on."
  value       = { for name, fn in local.catalog.functions : name => fn.service }
}

output "service_accounts" {
  description = "Component => service account email."
  value = merge(
    { for name, sa in google_service_account.function : name => sa.email },
    { (local.catalog.agent.component) = google_service_account.gateway.email },
  )
}

output "secrets_to_fill" {
  description = "Secrets created without a value: add one version to each (README, Secrets)."
  value       = sort(keys(local.catalog.secrets))
}

output "gateway_vm" {
  description = "The IB Gateway VM and how to reach its gateways' VNC for the weekly 2FA."
  value = {
    name = google_compute_instance.gateway.name
    zone = local.zone
    vnc_tunnels = {
      for login, cfg in var.ib_logins : login =>
      "gcloud compute ssh ${google_compute_instance.gateway.name} --zone ${local.zone} --tunnel-through-iap -- -N -L ${cfg.vnc_port}:127.0.0.1:${cfg.vnc_port}"
    }
  }
}

output "buckets" {
  description = "Backups (Firestore exports) and statements buckets."
  value = {
    backups    = google_storage_bucket.backups.name
    statements = google_storage_bucket.statements.name
  }
}

output "agent_image_repository" {
  description = "Where the gateway agent's image goes (issue 4)."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}
