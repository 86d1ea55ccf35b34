"""Embedded-mode runtime: the local runner, scheduler and demo."""
