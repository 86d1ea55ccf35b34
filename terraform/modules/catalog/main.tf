# The catalog: everything the deployment is generated from, read from the
# repository's single definitions and nothing else. It has no provider, so
# tests evaluate it offline with the real terraform binary (tests/deploy).
#
#   shared/spreadpilot/platform/topics.yaml    topics, subscriptions (+ dead letters)
#   scheduler/jobs.yaml                        Cloud Scheduler jobs
#   functions/<name>/deploy.yaml               one Cloud Function per folder
#   shared/spreadpilot/platform/collections.py  (mirrored) the collections with a TTL
#   deploy/gateway-agent.yaml                  the agent on the IB Gateway VM
#   shared/spreadpilot/platform/secrets.yaml   secrets and who reads them
#
# The dead-letter derivation mirrors spreadpilot.platform.topology.build_topology:
# every subscription of topics.yaml gets "<name>-dead-letter" and that topic a
# pull subscription "<name>-dead-letter-hold" that keeps what lands there.

locals {
  topics_file  = yamldecode(file("${var.repo_root}/shared/spreadpilot/platform/topics.yaml"))
  jobs_file    = yamldecode(file("${var.repo_root}/scheduler/jobs.yaml"))
  secrets_file = yamldecode(file("${var.repo_root}/shared/spreadpilot/platform/secrets.yaml"))
  agent        = yamldecode(file("${var.repo_root}/deploy/gateway-agent.yaml"))

  defaults = local.topics_file.defaults

  declared_subscriptions = {
    for name, spec in local.topics_file.subscriptions : name => {
      topic                     = spec.topic
      push                      = try(spec.push, null)
      pull                      = try(spec.pull, null)
      ack_deadline_seconds      = try(spec.ack_deadline_seconds, local.defaults.ack_deadline_seconds)
      max_delivery_attempts     = try(spec.max_delivery_attempts, local.defaults.max_delivery_attempts)
      min_backoff_seconds       = try(spec.min_backoff_seconds, local.defaults.min_backoff_seconds)
      max_backoff_seconds       = try(spec.max_backoff_seconds, local.defaults.max_backoff_seconds)
      message_retention_seconds = try(spec.message_retention_seconds, local.defaults.message_retention_seconds)
      exactly_once              = try(spec.exactly_once, false)
      dead_letter_topic         = "${name}-dead-letter"
    }
  }

  hold_subscriptions = {
    for name, sub in local.declared_subscriptions : "${sub.dead_letter_topic}-hold" => {
      topic                     = sub.dead_letter_topic
      push                      = null
      pull                      = "operator"
      ack_deadline_seconds      = local.defaults.ack_deadline_seconds
      max_delivery_attempts     = local.defaults.max_delivery_attempts
      min_backoff_seconds       = local.defaults.min_backoff_seconds
      max_backoff_seconds       = local.defaults.max_backoff_seconds
      message_retention_seconds = local.defaults.message_retention_seconds
      exactly_once              = false
      dead_letter_topic         = null
    }
  }

  subscriptions = merge(local.declared_subscriptions, local.hold_subscriptions)

  topics = merge(
    { for name, description in local.topics_file.topics : name => description },
    {
      for name, sub in local.declared_subscriptions : sub.dead_letter_topic =>
      "Messages ${name} could not process after every retry."
    },
  )

  # One Cloud Scheduler job per cron of each job (a job may have several crons:
  # Cloud Scheduler takes one). Payload and attribute name the job, as the local
  # scheduler's do.
  scheduler_jobs = merge([
    for name, job in local.jobs_file.jobs : {
      for index, cron in job.schedules :
      (length(job.schedules) == 1 ? name : "${name}-${index + 1}") => {
        job         = name
        description = job.description
        schedule    = cron
        time_zone   = job.time_zone
        topic       = job.topic
        consumer    = job.consumer
      }
    }
  ]...)

  # Function folders: each has main.py; each must have deploy.yaml.
  function_folders = toset([for path in fileset(var.repo_root, "functions/*/main.py") : split("/", path)[1]])
  descriptor_files = toset([for path in fileset(var.repo_root, "functions/*/deploy.yaml") : split("/", path)[1]])

  # A function is triggered either by the push subscription of topics.yaml its
  # `trigger` names (cloud_event entry point), or, with `trigger: http`, by HTTP
  # requests (http entry point) and by no subscription. Optional keys and their
  # defaults: ingress (ALLOW_INTERNAL_ONLY: only Pub/Sub push and this project's
  # uptime checks reach it), public (false: only named identities may invoke;
  # true: allUsers, for an HTTP function that authenticates each request itself),
  # concurrency (1 request per instance), health_path (none: no uptime check).
  http_trigger = "http"

  functions = {
    for name in local.descriptor_files : name => merge(
      {
        ingress     = "ALLOW_INTERNAL_ONLY"
        public      = false
        concurrency = 1
      },
      yamldecode(file("${var.repo_root}/functions/${name}/deploy.yaml")),
      {
        # Cloud Run service and service-account ids use dashes.
        service = replace(name, "_", "-")
        account = "fn-${substr(replace(name, "_", "-"), 0, 27)}"
      },
    )
  }

  # The topics each function may publish to: its deploy.yaml's, plus its trigger's
  # dead-letter topic (the entry wrapper dead-letters there) if a subscription
  # triggers it; an HTTP function has none.
  function_publishes = {
    for name, fn in local.functions : name => sort(distinct(concat(
      fn.publishes,
      contains(keys(local.declared_subscriptions), fn.trigger) ? [local.declared_subscriptions[fn.trigger].dead_letter_topic] : [],
    )))
  }

  # Functions whose Cloud Run service allUsers may invoke (Terraform's only public grant).
  public_functions = sort([for name, fn in local.functions : name if fn.public])

  agent_subscriptions = sort([
    for name, sub in local.declared_subscriptions : name if sub.pull == local.agent.component
  ])

  components = concat(keys(local.functions), [local.agent.component])

  # Secrets: the catalogue's, plus one per IB login for the gateway VM.
  secrets = merge(
    {
      for name, secret in local.secrets_file.secrets : name => {
        description = secret.description
        readers     = sort(secret.readers)
      }
    },
    {
      for login, _ in var.ib_logins : "ib-gateway-${login}" => {
        description = "IBC environment (TWS_USERID, TWS_PASSWORD, VNC_SERVER_PASSWORD) of IB login ${login}."
        readers     = [local.agent.component]
      }
    },
  )

  secret_readers = flatten([
    for name, secret in local.secrets : [
      for reader in secret.readers : { key = "${name}/${reader}", secret = name, reader = reader }
    ]
  ])

  function_secrets = {
    for name, _ in local.functions : name => sort([
      for secret_name, secret in local.secrets : secret_name if contains(secret.readers, name)
    ])
  }

  # Collections whose documents expire (Firestore TTL on ttl_field): the same
  # list as spreadpilot.platform.collections.EXPIRES and the field as
  # spreadpilot.ports.store.EXPIRE_AT. Terraform cannot import Python, so this is
  # a copy, and tests/deploy (firestore_problems) fails while the two differ: a
  # collection added to EXPIRES must be added here. Retention is the writer's
  # (expire_at): 365 days for the trade logs, 90 for the console's audit rows.
  ttl_collections = ["claims", "executions", "job_runs", "fills", "marks", "settlements", "audit"]
  ttl_field       = "expire_at"

  # --- what must hold for the definitions to be deployable (checked at plan time
  # by the output preconditions below, and by tests/deploy)
  folders_without_descriptor = setsubtract(local.function_folders, local.descriptor_files)
  descriptors_without_folder = setsubtract(local.descriptor_files, local.function_folders)
  pushed_functions           = compact([for name, sub in local.declared_subscriptions : sub.push])
  bad_triggers = [
    for name, fn in local.functions : name
    if fn.trigger == local.http_trigger ? contains(local.pushed_functions, name) : try(local.declared_subscriptions[fn.trigger].push, null) != name
  ]
  push_without_function = [
    for name, sub in local.declared_subscriptions : name
    if sub.push != null && !contains(keys(local.functions), coalesce(sub.push, "-"))
  ]
  timeouts_over_ack_deadline = [
    for name, fn in local.functions : name
    if fn.trigger != local.http_trigger && fn.timeout_seconds > try(local.declared_subscriptions[fn.trigger].ack_deadline_seconds, 0)
  ]
  # Only an HTTP function may be reachable from outside (ingress) or by anyone
  # (public), and a public one must allow all ingress and have a health_path.
  bad_exposure = concat(
    [for name, fn in local.functions : "${name} (ingress ${fn.ingress})" if !contains(["ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB", "ALLOW_ALL"], fn.ingress)],
    [for name, fn in local.functions : "${name} (ingress ${fn.ingress} needs trigger: http)" if fn.ingress != "ALLOW_INTERNAL_ONLY" && fn.trigger != local.http_trigger],
    [for name, fn in local.functions : "${name} (public needs trigger: http)" if fn.public && fn.trigger != local.http_trigger],
    [for name, fn in local.functions : "${name} (public needs ingress: ALLOW_ALL)" if fn.public && fn.ingress != "ALLOW_ALL"],
    [for name, fn in local.functions : "${name} (public needs a health_path)" if fn.public && try(fn.health_path, null) == null],
  )
  # latency_slo labels the service; "interactive" ones are held to p95 < 1 s
  # (platform/monitoring.tf). Cloud Run refuses concurrency > 1 below 1 vCPU.
  bad_service_settings = concat(
    [for name, fn in local.functions : "${name} (latency_slo ${fn.latency_slo})" if !contains(["batch", "interactive"], fn.latency_slo)],
    [for name, fn in local.functions : "${name} (concurrency ${fn.concurrency})" if fn.concurrency < 1 || fn.concurrency > 1000 || floor(fn.concurrency) != fn.concurrency],
    [for name, fn in local.functions : "${name} (concurrency ${fn.concurrency} needs cpu >= 1)" if fn.concurrency > 1 && tonumber(fn.cpu) < 1],
  )
  unknown_topics = distinct(concat(
    [for name, job in local.scheduler_jobs : "${job.topic} (job ${job.job})" if !contains(keys(local.topics), job.topic)],
    flatten([for name, fn in local.functions : [for t in fn.publishes : "${t} (function ${name})" if !contains(keys(local.topics), t)]]),
    [for t in local.agent.publishes : "${t} (gateway agent)" if !contains(keys(local.topics), t)],
  ))
  unknown_readers = [for r in local.secret_readers : r.key if !contains(local.components, r.reader)]
}
