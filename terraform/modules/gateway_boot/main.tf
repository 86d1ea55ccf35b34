# The IB Gateway VM's cloud-init (Container-Optimized OS), rendered from the
# ib_logins map. No provider: tests render it offline with terraform itself and
# check what the VM will run (every published port on 127.0.0.1).
#
# Per login: a systemd unit fetches the login's IBC environment from Secret
# Manager into /run (tmpfs, never on disk) and runs one gateway container under
# IBC with AutoRestartTime, publishing the API port and the VNC port (for the
# weekly 2FA and first login, reached through an IAP SSH tunnel) on the VM's
# loopback only. The agent runs beside them on the host network, so it reaches
# 127.0.0.1:<api_port>; it talks to the rest of the system only through Pub/Sub.

locals {
  # The image's socat relays: live API on 4003, paper on 4004, VNC on 5900.
  container_api_port = { live = 4003, paper = 4004 }

  gateway_units = {
    for login, cfg in var.ib_logins : "ib-gateway-${login}.service" => templatefile(
      "${path.module}/templates/ib-gateway.service.tftpl",
      {
        login              = login
        secret             = "${var.secret_prefix}${login}"
        project_id         = var.project_id
        image              = var.gateway_image
        trading_mode       = cfg.trading_mode
        api_port           = cfg.api_port
        vnc_port           = cfg.vnc_port
        container_api_port = local.container_api_port[cfg.trading_mode]
        auto_restart_time  = cfg.auto_restart_time
      },
    )
  }

  agent_environment = merge(var.agent_environment, {
    # The agent's gateways (gateway/agent.py parse_gateways): login id = the
    # followers' gateway_id => where its gateway listens on the loopback, the
    # fixed IB API clientId to connect with and the accounts it may trade
    # ([] = any account the login manages).
    SPREADPILOT_GATEWAYS = jsonencode({
      for login, cfg in var.ib_logins : login => {
        host      = "127.0.0.1"
        port      = cfg.api_port
        client_id = cfg.client_id
        accounts  = cfg.accounts
      }
    })
  })

  agent_unit = templatefile("${path.module}/templates/spreadpilot-agent.service.tftpl", {
    image    = var.agent_image == "" ? "none" : var.agent_image
    registry = var.agent_image == "" ? "none" : split("/", var.agent_image)[0]
    command  = join(" ", var.agent_command)
    gateways = join(" ", keys(local.gateway_units))
  })

  cloud_config = {
    write_files = concat(
      [
        {
          path        = "/etc/spreadpilot/fetch-secret.sh"
          permissions = "0700"
          owner       = "root"
          content     = file("${path.module}/templates/fetch-secret.sh")
        },
        {
          path        = "/etc/spreadpilot/agent.env"
          permissions = "0600"
          owner       = "root"
          content     = join("", [for k in sort(keys(local.agent_environment)) : "${k}=${local.agent_environment[k]}\n"])
        },
        {
          path        = "/etc/systemd/system/spreadpilot-agent.service"
          permissions = "0644"
          owner       = "root"
          content     = local.agent_unit
        },
      ],
      [
        for unit, content in local.gateway_units : {
          path        = "/etc/systemd/system/${unit}"
          permissions = "0644"
          owner       = "root"
          content     = content
        }
      ],
    )
    runcmd = concat(
      [
        ["systemctl", "daemon-reload"],
      ],
      [for unit in sort(keys(local.gateway_units)) : ["systemctl", "start", unit]],
      var.agent_image == "" ? [] : [["systemctl", "start", "spreadpilot-agent.service"]],
    )
  }

  user_data = "#cloud-config\n${yamlencode(local.cloud_config)}"
}
