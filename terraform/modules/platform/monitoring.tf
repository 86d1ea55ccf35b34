# Monitoring: log-based metrics, notification channels, the alert policies of
# domain.md section 9, uptime checks and the operations guide's four dashboards.
#
# Log contract (structured JSON lines, spreadpilot.platform.logs): every line
# carries labels.component; alerts carry jsonPayload.alert_type; the agent
# (issue 4) logs jsonPayload.operation = "order_placed", "order_filled" and
# "heartbeat". Policies on agent metrics are disabled until agent_image is set.

locals {
  agent_enabled = var.agent_image != ""
  services      = [for fn in local.catalog.functions : fn.service]
  services_in   = join(", ", [for s in local.services : "\"${s}\""])

  log_metrics = {
    errors = {
      description = "ERROR and CRITICAL log lines of every component."
      filter      = "severity>=ERROR AND labels.component:*"
    }
    alerts = {
      description = "Alerts raised (one line per alert, AlertPublisher), by type."
      # the producer's line only: the router's delivery line (operation alert_route)
      # would count every alert twice and feed routed incidents back into the metric
      filter = "jsonPayload.alert_type:* AND NOT jsonPayload.operation=\"alert_route\""
    }
    orders = {
      description = "Orders the agent sent to IB."
      filter      = "jsonPayload.operation=\"order_placed\""
    }
    fills = {
      description = "Orders IB filled."
      filter      = "jsonPayload.operation=\"order_filled\""
    }
    agent-heartbeats = {
      description = "Gateway agent heartbeats (every 15 s)."
      filter      = "jsonPayload.operation=\"heartbeat\" AND labels.component=\"${local.catalog.agent.component}\""
    }
  }
}

resource "google_logging_metric" "metric" {
  for_each = local.log_metrics

  project     = var.project_id
  name        = "spreadpilot/${each.key}"
  description = each.value.description
  filter      = each.value.filter

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key        = "component"
      value_type = "STRING"
    }
    labels {
      key        = "alert_type"
      value_type = "STRING"
    }
    labels {
      key        = "severity"
      value_type = "STRING"
    }
  }

  label_extractors = {
    component  = "EXTRACT(labels.component)"
    alert_type = "EXTRACT(jsonPayload.alert_type)"
    severity   = "EXTRACT(severity)"
  }
}

# --- notification channels

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.alert_emails)

  project      = var.project_id
  display_name = "SpreadPilot email ${each.value}"
  type         = "email"
  labels       = { email_address = each.value }
}

resource "google_monitoring_notification_channel" "sms" {
  for_each = toset(var.alert_sms_numbers)

  project      = var.project_id
  display_name = "SpreadPilot SMS ${each.value}"
  type         = "sms"
  labels       = { number = each.value }
}

resource "google_monitoring_notification_channel" "pagerduty" {
  count = var.pagerduty_service_key == "" ? 0 : 1

  project      = var.project_id
  display_name = "SpreadPilot PagerDuty"
  type         = "pagerduty"

  sensitive_labels {
    service_key = var.pagerduty_service_key
  }
}

# Incidents also go onto the alerts topic, so they reach Telegram through the
# alert router (issue 5) like every other alert.
resource "google_monitoring_notification_channel" "alerts_topic" {
  project      = var.project_id
  display_name = "SpreadPilot alerts topic"
  type         = "pubsub"
  labels       = { topic = google_pubsub_topic.topic["alerts"].id }
}

resource "google_pubsub_topic_iam_member" "monitoring_publishes_incidents" {
  project = var.project_id
  topic   = google_pubsub_topic.topic["alerts"].name
  role    = "roles/pubsub.publisher"
  member  = local.monitoring_agent
}

locals {
  warning_channels = concat(
    [for c in google_monitoring_notification_channel.email : c.id],
    [google_monitoring_notification_channel.alerts_topic.id],
  )
  critical_channels = concat(
    local.warning_channels,
    [for c in google_monitoring_notification_channel.sms : c.id],
    [for c in google_monitoring_notification_channel.pagerduty : c.id],
  )
  alert_metric = "logging.googleapis.com/user/spreadpilot/alerts"
}

# --- uptime checks: every function whose deploy.yaml has a health_path (the
# /health answer arrives with issue 5). Cloud Run admits this project's uptime
# checkers through internal ingress (a public function's ALLOW_ALL admits them
# anyway); the check authenticates with an OIDC token.

resource "google_monitoring_uptime_check_config" "function" {
  for_each = { for name, fn in local.catalog.functions : name => fn if try(fn.health_path, null) != null }

  project      = var.project_id
  display_name = "${each.value.service} health"
  timeout      = "10s"
  period       = "60s"

  http_check {
    path           = each.value.health_path
    port           = 443
    use_ssl        = true
    validate_ssl   = true
    request_method = "GET"
    service_agent_authentication {
      type = "OIDC_TOKEN"
    }
  }

  monitored_resource {
    type = "cloud_run_revision"
    labels = {
      project_id   = var.project_id
      service_name = each.value.service
      location     = var.region
    }
  }
}

# --- alert policies (domain.md section 9)

resource "google_monitoring_alert_policy" "service_down" {
  project               = var.project_id
  display_name          = "Service down (health failing > 2 min)"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = local.critical_channels

  conditions {
    display_name = "IB Gateway VM not running"
    condition_absent {
      filter   = "resource.type = \"gce_instance\" AND metric.type = \"compute.googleapis.com/instance/uptime\" AND metadata.user_labels.component = \"ib-gateway\""
      duration = "120s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_RATE"
      }
    }
  }

  dynamic "conditions" {
    for_each = google_monitoring_uptime_check_config.function
    content {
      display_name = "${conditions.key} /health failing"
      condition_threshold {
        filter          = "metric.type = \"monitoring.googleapis.com/uptime_check/check_passed\" AND resource.type = \"cloud_run_revision\" AND metric.labels.check_id = \"${conditions.value.uptime_check_id}\""
        comparison      = "COMPARISON_GT"
        threshold_value = 1
        duration        = "120s"
        aggregations {
          alignment_period     = "60s"
          per_series_aligner   = "ALIGN_NEXT_OLDER"
          cross_series_reducer = "REDUCE_COUNT_FALSE"
          group_by_fields      = ["resource.label.service_name"]
        }
      }
    }
  }

  documentation {
    content   = "A SpreadPilot component stopped answering. VM: `gcloud compute instances describe ib-gateway`; functions: Cloud Run revisions of the service. README: Running on Google Cloud."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "error_rate" {
  project               = var.project_id
  display_name          = "High error rate (> 1% of function requests fail, 5 min)"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.warning_channels

  conditions {
    display_name = "5xx / all requests > 1%"
    condition_threshold {
      filter             = "metric.type = \"run.googleapis.com/request_count\" AND resource.type = \"cloud_run_revision\" AND metric.labels.response_code_class = \"5xx\" AND resource.labels.service_name = one_of(${local.services_in})"
      denominator_filter = "metric.type = \"run.googleapis.com/request_count\" AND resource.type = \"cloud_run_revision\" AND resource.labels.service_name = one_of(${local.services_in})"
      comparison         = "COMPARISON_GT"
      threshold_value    = 0.01
      duration           = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "agent_offline" {
  project               = var.project_id
  display_name          = "Trading agent offline (no heartbeat > 5 min)"
  combiner              = "OR"
  severity              = "CRITICAL"
  enabled               = local.agent_enabled
  notification_channels = local.critical_channels

  conditions {
    display_name = "no agent heartbeat for 5 min"
    condition_absent {
      filter   = "metric.type = \"logging.googleapis.com/user/spreadpilot/agent-heartbeats\""
      duration = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }

  depends_on = [google_logging_metric.metric]
}

resource "google_monitoring_alert_policy" "order_success" {
  project               = var.project_id
  display_name          = "Order success < 95% (1 h)"
  combiner              = "OR"
  severity              = "ERROR"
  enabled               = local.agent_enabled
  notification_channels = local.warning_channels

  conditions {
    display_name = "fills / orders < 95%"
    condition_threshold {
      filter             = "metric.type = \"logging.googleapis.com/user/spreadpilot/fills\""
      denominator_filter = "metric.type = \"logging.googleapis.com/user/spreadpilot/orders\""
      comparison         = "COMPARISON_LT"
      threshold_value    = 0.95
      duration           = "0s"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  depends_on = [google_logging_metric.metric]
}

resource "google_monitoring_alert_policy" "latency" {
  project               = var.project_id
  display_name          = "API latency p95 > 1000 ms"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.warning_channels

  conditions {
    display_name = "p95 request latency of interactive services > 1 s (5 min)"
    condition_threshold {
      filter          = "metric.type = \"run.googleapis.com/request_latencies\" AND resource.type = \"cloud_run_revision\" AND metadata.user_labels.\"latency-slo\" = \"interactive\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1000
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_PERCENTILE_95"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "Messages dead-lettered by Pub/Sub"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.warning_channels

  conditions {
    display_name = "a subscription forwarded messages to its dead-letter topic"
    condition_threshold {
      filter          = "metric.type = \"pubsub.googleapis.com/subscription/dead_letter_message_count\" AND resource.type = \"pubsub_subscription\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.subscription_id"]
      }
    }
  }

  documentation {
    content   = "Pub/Sub gave up on messages after every retry. They are kept on the subscription's <name>-dead-letter-hold subscription: `gcloud pubsub subscriptions pull <name>-dead-letter-hold --limit=10`."
    mime_type = "text/markdown"
  }
}

# Alert types that page at once (one line per alert raised by any component).
locals {
  alert_type_policies = {
    gateway_disconnected = { display_name = "IB Gateway disconnected > 1 min", type = "GATEWAY_UNREACHABLE", severity = "CRITICAL" }
    assignment_detected  = { display_name = "Assignment detected", type = "ASSIGNMENT_DETECTED", severity = "CRITICAL" }
    report_failed        = { display_name = "Report delivery failed", type = "REPORT_FAILED", severity = "ERROR" }
  }
}

resource "google_monitoring_alert_policy" "alert_type" {
  for_each = local.alert_type_policies

  project               = var.project_id
  display_name          = each.value.display_name
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = each.value.severity == "CRITICAL" ? local.critical_channels : local.warning_channels

  conditions {
    display_name = "${each.value.type} raised"
    condition_threshold {
      filter          = "metric.type = \"${local.alert_metric}\" AND metric.labels.alert_type = \"${each.value.type}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  depends_on = [google_logging_metric.metric]
}

