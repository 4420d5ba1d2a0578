"""One pooled Redis client per URL and timeout profile, per process.

``commands``: short request/response calls (pacing buckets, the 3036 pause,
sweep markers), bounded by a socket timeout so a stuck Redis cannot hang a
worker.  ``pubsub``: live events, whose subscribers block on reads for as long
as they wait, so no socket timeout; a health check keeps idle pools honest."""

from __future__ import annotations

import threading
from typing import Any

from .conf import inference_settings

PROFILES: dict[str, dict[str, Any]] = {
    "commands": {"socket_timeout": 5, "socket_connect_timeout": 2},
    "pubsub": {"socket_connect_timeout": 2, "health_check_interval": 30},
}

_clients: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def redis_client(profile: str = "commands"):
    """The client for ``INFERENCE["REDIS_URL"]``, or None when Redis is off."""
    url = inference_settings.REDIS_URL
    if not url:
        return None
    key = (url, profile)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                import redis  # only deployments with Redis need the package loaded

                client = redis.Redis.from_url(url, **PROFILES[profile])
                _clients[key] = client
    return client
