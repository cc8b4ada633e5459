"""The broker engines these tests run on: tests/support/brokers.py."""

from tests.support.brokers import broker, nats_cluster, rabbitmq_node

__all__ = ["broker", "nats_cluster", "rabbitmq_node"]
