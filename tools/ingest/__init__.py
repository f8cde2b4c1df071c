"""Ingest developer tools: the near-duplicate precision/recall evaluation."""
