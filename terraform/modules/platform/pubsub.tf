# Topics and subscriptions exactly as topics.yaml (via the catalog) declares
# them: retry policy and dead-letter topic on every subscription, a "-hold"
# pull subscription on every dead-letter topic, exactly-once where asked. Push
# subscriptions deliver to their function's URL with an OIDC token: a function
# resource's own Eventarc trigger cannot carry a dead-letter policy.

resource "google_pubsub_topic" "topic" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption at rest; messages carry order intents and alerts, no credentials, and a CMEK key would add a KMS dependency to every publish on the signal path.
  for_each = local.catalog.topics

  project = var.project_id
  name    = each.key
  labels  = local.labels

  message_retention_duration = "604800s"

  depends_on = [google_project_service.api]
}

resource "google_pubsub_subscription" "subscription" {
  for_each = local.catalog.subscriptions

  project = var.project_id
  name    = each.key
  topic   = google_pubsub_topic.topic[each.value.topic].id
  labels  = local.labels

  ack_deadline_seconds         = each.value.ack_deadline_seconds
  message_retention_duration   = "${each.value.message_retention_seconds}s"
  enable_exactly_once_delivery = each.value.exactly_once

  retry_policy {
    minimum_backoff = "${each.value.min_backoff_seconds}s"
    maximum_backoff = "${each.value.max_backoff_seconds}s"
  }

  dynamic "dead_letter_policy" {
    for_each = each.value.dead_letter_topic == null ? [] : [each.value.dead_letter_topic]
    content {
      dead_letter_topic     = google_pubsub_topic.topic[dead_letter_policy.value].id
      max_delivery_attempts = each.value.max_delivery_attempts
    }
  }

  dynamic "push_config" {
    for_each = each.value.push == null ? [] : [google_cloudfunctions2_function.function[each.value.push].service_config[0].uri]
    content {
      push_endpoint = push_config.value
      oidc_token {
        service_account_email = google_service_account.push.email
        audience              = push_config.value
      }
    }
  }

  # Held and pull subscriptions may go weeks without a reader: never expire them.
  expiration_policy {
    ttl = ""
  }
}

# Dead-lettering: Pub/Sub's service agent forwards from each subscription with a
# dead-letter policy to that policy's topic.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = { for name, sub in local.catalog.subscriptions : name => sub.dead_letter_topic if sub.dead_letter_topic != null }

  project = var.project_id
  topic   = google_pubsub_topic.topic[each.value].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = { for name, sub in local.catalog.subscriptions : name => sub if sub.dead_letter_topic != null }

  project      = var.project_id
  subscription = google_pubsub_subscription.subscription[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# Publishers: each function on the topics its deploy.yaml names (plus its
# trigger's dead-letter topic), the agent on its own.
locals {
  publishers = merge(
    merge([
      for name, topics in local.catalog.function_publishes : {
        for topic in topics : "function/${name}/${topic}" => { topic = topic, member = google_service_account.function[name].member }
      }
    ]...),
    {
      for topic in local.catalog.agent.publishes : "gateway-agent/${topic}" => { topic = topic, member = google_service_account.gateway.member }
    },
  )
}

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.publishers

  project = var.project_id
  topic   = google_pubsub_topic.topic[each.value.topic].name
  role    = "roles/pubsub.publisher"
  member  = each.value.member
}

# The agent consumes its pull subscriptions and nothing else.
resource "google_pubsub_subscription_iam_member" "agent_subscriber" {
  for_each = toset(local.catalog.agent.subscriptions)

  project      = var.project_id
  subscription = google_pubsub_subscription.subscription[each.value].name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.gateway.member
}
