output "topics" {
  description = "Every topic: topics.yaml's and one dead-letter topic per subscription (name => description)."
  value       = local.topics

  precondition {
    condition     = length(local.unknown_topics) == 0
    error_message = "Publishing to topics that topics.yaml does not declare: ${join(", ", local.unknown_topics)}."
  }
}

output "subscriptions" {
  description = "Every subscription with its delivery settings, dead-letter holds included."
  value       = local.subscriptions

  precondition {
    condition     = length(local.push_without_function) == 0
    error_message = "Push subscriptions whose function has no functions/<name>/deploy.yaml: ${join(", ", local.push_without_function)}."
  }
}

output "scheduler_jobs" {
  description = "One Cloud Scheduler job per (job, cron) of scheduler/jobs.yaml."
  value       = local.scheduler_jobs
}

output "functions" {
  description = "One gen2 Cloud Function per functions/<name>/ folder, from its deploy.yaml."
  value       = local.functions

  precondition {
    condition     = length(local.folders_without_descriptor) == 0
    error_message = "Function folders without functions/<name>/deploy.yaml: ${join(", ", local.folders_without_descriptor)}."
  }
  precondition {
    condition     = length(local.descriptors_without_folder) == 0
    error_message = "deploy.yaml without functions/<name>/main.py: ${join(", ", local.descriptors_without_folder)}."
  }
  precondition {
    condition     = length(local.bad_triggers) == 0
    error_message = "Functions whose trigger is not a topics.yaml push subscription delivering to them (or, with trigger: http, that a push subscription delivers to): ${join(", ", local.bad_triggers)}."
  }
  precondition {
    condition     = length(local.timeouts_over_ack_deadline) == 0
    error_message = "Functions whose timeout exceeds their subscription's ack deadline: ${join(", ", local.timeouts_over_ack_deadline)}."
  }
  precondition {
    condition     = length(local.bad_exposure) == 0
    error_message = "Functions exposed beyond what an internal, push-triggered function may be: ${join(", ", local.bad_exposure)}."
  }
  precondition {
    condition     = length(local.bad_service_settings) == 0
    error_message = "Functions with unsupported service settings: ${join(", ", local.bad_service_settings)}."
  }
}

output "function_publishes" {
  description = "Topics each function may publish to (its deploy.yaml's plus, if a subscription triggers it, that trigger's dead-letter topic)."
  value       = local.function_publishes
}

output "public_functions" {
  description = "Functions (`public: true`, HTTP only) whose service allUsers may invoke: they authenticate each request themselves."
  value       = local.public_functions
}

output "function_secrets" {
  description = "Secrets each function may read."
  value       = local.function_secrets
}

output "agent" {
  description = "The gateway agent: its descriptor and the pull subscriptions it consumes."
  value = merge(local.agent, {
    subscriptions = local.agent_subscriptions
    secrets       = sort([for name, secret in local.secrets : name if contains(secret.readers, local.agent.component)])
  })
}

output "secrets" {
  description = "Every secret (name => description, readers)."
  value       = local.secrets

  precondition {
    condition     = length(local.unknown_readers) == 0
    error_message = "Secret readers that are not components (function folders or gateway-agent): ${join(", ", local.unknown_readers)}."
  }
}

output "secret_readers" {
  description = "One entry per (secret, reader), keyed \"secret/reader\"."
  value       = { for r in local.secret_readers : r.key => r }
}

output "ttl_collections" {
  description = "Firestore collections with a TTL policy on ttl_field."
  value       = local.ttl_collections
}

output "ttl_field" {
  description = "The document field Firestore's TTL policies read."
  value       = local.ttl_field
}
