"""Contract tests for the document store port."""
