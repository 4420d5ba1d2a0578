"""Live run events for ``GET /api/runs/{id}/events/`` (Server-Sent Events).

With Redis (``INFERENCE['REDIS_URL']``) the relay subscribes to the run's
channel, replays the backlog (output deltas merged into the text so far), then
relays live events until ``done``.  Without Redis (the embedded SQLite
default) it polls the database: ``status`` changes and ``done``, no deltas.

Either way the relay is read-only: a client that goes away closes the generator
and nothing else — the worker, the run and its usage are untouched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..models import Run, RunStatus
from . import live

POLL_INTERVAL = 0.25
MAX_STREAM_SECONDS = 3600
# Idle time after which the relay re-reads the run from the database (a worker
# that died, or a publish lost with Redis briefly away, must not hang the
# subscriber) and sends a comment line (keeps proxies from closing the stream,
# and lets the server notice a client that left).
IDLE_CHECK_SECONDS = 5.0

_ORDER = {
    RunStatus.QUEUED: 0,
    RunStatus.RUNNING: 1,
    RunStatus.SUCCEEDED: 2,
    RunStatus.FAILED: 2,
    RunStatus.CANCELED: 2,
}


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def _load(run_id) -> Run:
    return Run.objects.select_related("user", "team").prefetch_related("media").get(pk=run_id)


def run_events(run_id, serialize: Callable[[Run], dict], last_event_id: int = 0) -> Iterator[str]:
    """Relay ``status``, ``output`` and ``done`` (with the final run), then close."""
    if live.enabled():
        try:
            subscription = live.Subscription(run_id, after=last_event_id)
        except Exception:  # Redis unreachable: the database still knows the status
            subscription = None
        if subscription is not None:
            yield from _relay(run_id, subscription, serialize)
            return
    yield from _poll(run_id, serialize)


def _relay(run_id, subscription: live.Subscription, serialize: Callable[[Run], dict]) -> Iterator[str]:
    with subscription:
        # The subscription exists before this read: a transition after it is
        # either already in the row or will arrive on the channel.
        run = _load(run_id)
        last_status = run.status
        yield sse("status", {"status": run.status})
        if run.is_terminal:
            yield sse("done", serialize(run))
            return

        def handle(item: live.LiveEvent) -> tuple[str | None, bool]:
            nonlocal last_status
            if item.event == "output":
                return sse("output", item.data, item.seq), False
            if item.event == "status":
                status = item.data.get("status")
                # Status only moves forward: the backlog may repeat what the row showed.
                if status and _ORDER.get(status, -1) > _ORDER.get(last_status, -1):
                    last_status = status
                    return sse("status", {"status": status}, item.seq), False
                return None, False
            if item.event == "done":
                return sse("done", serialize(_load(run_id)), item.seq), True
            return None, False

        for item in live.coalesce(subscription.backlog):
            text, finished = handle(item)
            if text:
                yield text
            if finished:
                return

        deadline = time.monotonic() + MAX_STREAM_SECONDS
        while time.monotonic() < deadline:
            try:
                item = subscription.next_live(IDLE_CHECK_SECONDS)
            except Exception:  # Redis went away mid-stream: finish from the database
                yield from _poll(run_id, serialize, last_status=last_status)
                return
            if item is None:
                run = _load(run_id)
                if run.is_terminal:
                    if _ORDER[run.status] > _ORDER.get(last_status, -1):
                        yield sse("status", {"status": run.status})
                    yield sse("done", serialize(run))
                    return
                yield ": keepalive\n\n"
                continue
            text, finished = handle(item)
            if text:
                yield text
            if finished:
                return


def _poll(run_id, serialize: Callable[[Run], dict], last_status: str | None = None) -> Iterator[str]:
    deadline = time.monotonic() + MAX_STREAM_SECONDS
    while time.monotonic() < deadline:
        run = _load(run_id)
        if run.status != last_status:
            last_status = run.status
            yield sse("status", {"status": run.status})
        if run.is_terminal:
            yield sse("done", serialize(run))
            return
        time.sleep(POLL_INTERVAL)
