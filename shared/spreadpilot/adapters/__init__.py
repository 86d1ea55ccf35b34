"""Adapters: the edge where ports meet real services."""
