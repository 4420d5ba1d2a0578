"""Live run events for ``GET /api/runs/{id}/events/`` (Server-Sent Events)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from .models import Run

POLL_INTERVAL = 0.25
MAX_STREAM_SECONDS = 3600


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def run_events(run_id, serialize: Callable[[Run], dict]) -> Iterator[str]:
    """Relay status changes, then ``done`` with the final run, then close."""
    last_status = None
    deadline = time.monotonic() + MAX_STREAM_SECONDS
    while time.monotonic() < deadline:
        run = Run.objects.select_related("user", "team").get(pk=run_id)
        if run.status != last_status:
            last_status = run.status
            yield sse("status", {"status": run.status})
        if run.is_terminal:
            yield sse("done", serialize(run))
            return
        time.sleep(POLL_INTERVAL)
