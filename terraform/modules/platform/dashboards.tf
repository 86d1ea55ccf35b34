# The operations guide's four dashboards. Each tile is one time series chart:
# [title, filter, aligner, reducer, group_by].

locals {
  run_filter = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = one_of(${local.services_in})"
  log_metric = "metric.type = \"logging.googleapis.com/user/spreadpilot"

  dashboards = {
    overview = {
      title = "SpreadPilot Overview"
      tiles = [
        ["Function requests by service", "metric.type = \"run.googleapis.com/request_count\" AND ${local.run_filter}", "ALIGN_RATE", "REDUCE_SUM", ["resource.label.service_name"]],
        ["Errors by component", "${local.log_metric}/errors\"", "ALIGN_SUM", "REDUCE_SUM", ["metric.label.component"]],
        ["Alerts by type", "${local.log_metric}/alerts\"", "ALIGN_SUM", "REDUCE_SUM", ["metric.label.alert_type"]],
        ["IB Gateway VM uptime", "metric.type = \"compute.googleapis.com/instance/uptime\" AND resource.type = \"gce_instance\"", "ALIGN_RATE", "REDUCE_MEAN", []],
      ]
    }
    trading = {
      title = "Trading Bot Performance"
      tiles = [
        ["Orders sent to IB", "${local.log_metric}/orders\"", "ALIGN_SUM", "REDUCE_SUM", []],
        ["Fills", "${local.log_metric}/fills\"", "ALIGN_SUM", "REDUCE_SUM", []],
        ["Agent heartbeats", "${local.log_metric}/agent-heartbeats\"", "ALIGN_SUM", "REDUCE_SUM", []],
        ["Signal path latency p95 (ms)", "metric.type = \"run.googleapis.com/request_latencies\" AND ${local.run_filter}", "ALIGN_PERCENTILE_95", "REDUCE_MAX", ["resource.label.service_name"]],
      ]
    }
    health = {
      title = "Service Health"
      tiles = [
        ["Function instances", "metric.type = \"run.googleapis.com/container/instance_count\" AND ${local.run_filter}", "ALIGN_MAX", "REDUCE_SUM", ["resource.label.service_name"]],
        ["Function memory utilisation", "metric.type = \"run.googleapis.com/container/memory/utilizations\" AND ${local.run_filter}", "ALIGN_PERCENTILE_99", "REDUCE_MAX", ["resource.label.service_name"]],
        ["VM CPU utilisation", "metric.type = \"compute.googleapis.com/instance/cpu/utilization\" AND resource.type = \"gce_instance\"", "ALIGN_MEAN", "REDUCE_MEAN", []],
        ["Undelivered messages by subscription", "metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type = \"pubsub_subscription\"", "ALIGN_MAX", "REDUCE_SUM", ["resource.label.subscription_id"]],
      ]
    }
    errors = {
      title = "Error Rates"
      tiles = [
        ["5xx responses by service", "metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code_class = \"5xx\" AND ${local.run_filter}", "ALIGN_RATE", "REDUCE_SUM", ["resource.label.service_name"]],
        ["Error log lines by component", "${local.log_metric}/errors\"", "ALIGN_SUM", "REDUCE_SUM", ["metric.label.component"]],
        ["Dead-lettered messages by subscription", "metric.type = \"pubsub.googleapis.com/subscription/dead_letter_message_count\" AND resource.type = \"pubsub_subscription\"", "ALIGN_SUM", "REDUCE_SUM", ["resource.label.subscription_id"]],
        ["CRITICAL alerts by type", "${local.log_metric}/alerts\" AND metric.labels.severity = \"ERROR\"", "ALIGN_SUM", "REDUCE_SUM", ["metric.label.alert_type"]],
      ]
    }
  }
}

resource "google_monitoring_dashboard" "dashboard" {
  for_each = local.dashboards

  project = var.project_id
  dashboard_json = jsonencode({
    displayName = each.value.title
    mosaicLayout = {
      columns = 12
      tiles = [
        for index, tile in each.value.tiles : {
          xPos   = (index % 2) * 6
          yPos   = floor(index / 2) * 4
          width  = 6
          height = 4
          widget = {
            title = tile[0]
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = tile[1]
                    aggregation = {
                      alignmentPeriod    = "60s"
                      perSeriesAligner   = tile[2]
                      crossSeriesReducer = tile[3]
                      groupByFields      = tile[4]
                    }
                  }
                }
              }]
            }
          }
        }
      ]
    }
  })

  depends_on = [google_logging_metric.metric]
}
