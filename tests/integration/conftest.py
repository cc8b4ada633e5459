"""The broker engines (tests/support/brokers.py), registered once for every integration test so
the session-scoped NATS cluster and RabbitMQ node are started once, whichever folder asks."""

from tests.support.brokers import broker, nats_cluster, rabbitmq_node

__all__ = ["broker", "nats_cluster", "rabbitmq_node"]
