"""The broker engines these tests run on: tests/support/brokers.py."""

from tests.support.brokers import broker, rabbitmq_node

__all__ = ["broker", "rabbitmq_node"]
