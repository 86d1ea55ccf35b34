"""The gateway agent: the long-lived process beside the IB Gateways (issue 4).

It pulls the ``agent-orders`` subscription, executes each follower's order intent
on that follower's gateway connection (`spreadpilot.services.execution`) and acks
what is settled. Run it with ``spreadpilot agent``; see `gateway.agent`.
"""
