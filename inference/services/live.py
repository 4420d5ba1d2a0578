"""Live run events over Redis: a pub/sub channel per run plus a backlog list.

Every event is appended to ``cfai:run:<id>:log`` and published on
``cfai:run:<id>:live`` by one Lua script, so the event's sequence number (its
1-based position in the list) is the same in both places and no two publishers
(the worker, a web process cancelling the run) can interleave between the append
and the publish.

A subscriber that joins late subscribes *first*, then reads the backlog, then
drops live messages whose sequence number is not above the backlog's last: no
gap (anything published after the subscription is received) and no duplicate
(anything already in the backlog is skipped).

Publishing never fails a run: if Redis is away the run goes on and the relay
falls back on the database (see ``events.py``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from ..conf import inference_settings
from ..connections import redis_client

logger = logging.getLogger(__name__)

# How long a run's backlog is kept after its last event: long enough for a late
# subscriber, short enough not to keep every run's text in Redis.
BACKLOG_TTL_SECONDS = 3600

# KEYS[1] = backlog list, KEYS[2] = channel; ARGV[1] = event JSON, ARGV[2] = ttl.
_PUBLISH_SCRIPT = """
local seq = redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('PUBLISH', KEYS[2], seq .. '|' .. ARGV[1])
return seq
"""

_scripts: dict[str, Any] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class LiveEvent:
    seq: int
    event: str  # "status" | "output" | "done"
    data: dict[str, Any]


def enabled() -> bool:
    return bool(inference_settings.REDIS_URL)


def get_redis():
    """One connection pool per URL and process; ``None`` when live events are off."""
    url = inference_settings.REDIS_URL
    if not url:
        return None
    conn = redis_client("pubsub")
    if url not in _scripts:
        with _lock:
            _scripts.setdefault(url, conn.register_script(_PUBLISH_SCRIPT))
    return conn


def backlog_key(run_id) -> str:
    return f"cfai:run:{run_id}:log"


def channel(run_id) -> str:
    return f"cfai:run:{run_id}:live"


def publish(run_id, event: str, data: dict[str, Any]) -> int | None:
    """Append and publish one event; returns its sequence number, or None when
    live events are off or Redis failed (the run must not fail for it)."""
    conn = get_redis()
    if conn is None:
        return None
    payload = json.dumps({"event": event, "data": data}, default=str, separators=(",", ":"))
    try:
        script = _scripts[inference_settings.REDIS_URL]
        return int(script(keys=[backlog_key(run_id), channel(run_id)], args=[payload, BACKLOG_TTL_SECONDS]))
    except Exception as exc:  # redis.RedisError, connection refused, …
        logger.warning("run %s: live event %s not published: %s", run_id, event, exc)
        return None


def publish_on_commit(run_id, event: str, data: dict[str, Any]) -> None:
    """Publish once the current transaction commits, so a subscriber that reacts
    to the event reads the row as the event describes it."""
    transaction.on_commit(lambda: publish(run_id, event, data))


def publish_status(run_id, status: str) -> None:
    publish_on_commit(run_id, "status", {"status": str(status)})


def publish_all(run_id, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Several events of one run, in order, in one Redis round trip (a pipeline
    of the publishing script) instead of one each."""
    conn = get_redis()
    if conn is None:
        return
    keys = [backlog_key(run_id), channel(run_id)]
    payloads = [json.dumps({"event": e, "data": d}, default=str, separators=(",", ":")) for e, d in events]
    try:
        script = _scripts[inference_settings.REDIS_URL]
        pipe = conn.pipeline(transaction=False)
        for payload in payloads:
            pipe.evalsha(script.sha, len(keys), *keys, payload, BACKLOG_TTL_SECONDS)
        results = pipe.execute(raise_on_error=False)
    except Exception as exc:  # redis.RedisError, connection refused, …
        logger.warning("run %s: live events not published: %s", run_id, exc)
        return
    if any(isinstance(r, Exception) for r in results):
        # NOSCRIPT (a fresh or flushed Redis) fails every command alike: publish
        # them one by one, which loads the script first.
        for (event, data), result in zip(events, results, strict=True):
            if isinstance(result, Exception):
                publish(run_id, event, data)


def publish_done(run_id, status: str) -> None:
    # The relay serializes the final run from the database for its own viewer;
    # the message only says that it is final.  Both events in one round trip.
    data = {"status": str(status)}
    transaction.on_commit(lambda: publish_all(run_id, [("status", data), ("done", data)]))


def _decode(seq: int, raw: bytes | str) -> LiveEvent:
    body = json.loads(raw)
    return LiveEvent(seq=seq, event=body["event"], data=body.get("data") or {})


def read_backlog(run_id, after: int = 0) -> list[LiveEvent]:
    conn = get_redis()
    if conn is None:
        return []
    items = conn.lrange(backlog_key(run_id), after, -1)
    return [_decode(after + index + 1, raw) for index, raw in enumerate(items)]


class Subscription:
    """Subscribe-then-read-backlog, as one object.  Iterate ``backlog`` first,
    then call ``next_live(timeout)`` repeatedly; it returns None on timeout."""

    def __init__(self, run_id, after: int = 0, *, replay: bool = True) -> None:
        conn = get_redis()
        if conn is None:
            raise RuntimeError("live events are off (INFERENCE['REDIS_URL'] is None)")
        self.run_id = run_id
        self.pubsub = conn.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel(run_id))  # first: nothing published from now on is missed
        self.backlog = read_backlog(run_id, after) if replay else []
        self.last_seq = self.backlog[-1].seq if self.backlog else after

    def next_live(self, timeout: float) -> LiveEvent | None:
        import time

        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            message = self.pubsub.get_message(timeout=remaining)
            if message is None or message.get("type") != "message":
                continue
            seq_text, _, raw = message["data"].partition(b"|")
            seq = int(seq_text)
            if seq <= self.last_seq:
                continue  # already delivered from the backlog
            self.last_seq = seq
            return _decode(seq, raw)

    def close(self) -> None:
        try:
            self.pubsub.close()
        except Exception:  # closing a broken connection must not mask the caller's error
            pass

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def coalesce(events: list[LiveEvent]) -> Iterator[LiveEvent]:
    """Merge runs of consecutive ``output`` deltas into one event carrying the
    text so far (a late subscriber gets one event, not hundreds)."""
    pending: LiveEvent | None = None
    for item in events:
        if item.event == "output" and pending is not None:
            merged = dict(pending.data)
            merged["delta"] = pending.data.get("delta", "") + item.data.get("delta", "")
            if item.data.get("tool_calls"):
                merged["tool_calls"] = list(pending.data.get("tool_calls") or []) + list(item.data["tool_calls"])
            pending = LiveEvent(seq=item.seq, event="output", data=merged)
            continue
        if pending is not None:
            yield pending
            pending = None
        if item.event == "output":
            pending = item
        else:
            yield item
    if pending is not None:
        yield pending
