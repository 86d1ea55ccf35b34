"""Tests of the embedded runtime (local runner)."""
