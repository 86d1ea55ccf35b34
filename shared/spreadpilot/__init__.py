"""SpreadPilot: copy-trading operations for 0DTE QQQ vertical credit spreads."""

__version__ = "0.1.0"
