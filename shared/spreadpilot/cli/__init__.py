"""The `spreadpilot` command line."""
