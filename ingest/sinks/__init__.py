"""Sinks: Kafka for deployments, a callback for the embedded runner and tests."""

from ingest.sinks.base import CallbackSink, DeliveryError, Sink

__all__ = ["CallbackSink", "DeliveryError", "Sink"]
