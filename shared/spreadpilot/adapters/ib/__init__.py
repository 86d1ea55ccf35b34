"""Interactive Brokers adapter: the Broker port over ib_async (IB Gateway or ibsim)."""

from spreadpilot.adapters.ib.broker import DRY_RUN_REASON, IBBroker, margin_check_from

__all__ = ["DRY_RUN_REASON", "IBBroker", "margin_check_from"]
