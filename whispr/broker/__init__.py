"""Broker implementations: Redis pub/sub for clusters, in-process for one node."""

from whispr.broker.local import LocalFanout, MemoryBroker
from whispr.broker.redis import RedisBroker

__all__ = ["LocalFanout", "MemoryBroker", "RedisBroker", "open_broker"]


def open_broker(
    redis_url: str | None, node_id: str, prefix: str = "whispr"
) -> MemoryBroker | RedisBroker:
    """The broker the configuration asks for: Redis when a URL is set, else in-process."""
    if redis_url:
        return RedisBroker(redis_url, node_id=node_id, prefix=prefix)
    return MemoryBroker(node_id=node_id)
