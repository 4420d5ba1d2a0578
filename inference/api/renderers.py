"""A renderer for ``text/event-stream`` so browsers' EventSource (which sends
``Accept: text/event-stream``) passes DRF's content negotiation; the stream itself
is a StreamingHttpResponse and bypasses rendering."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.renderers import BaseRenderer


class EventStreamRenderer(BaseRenderer):
    media_type = "text/event-stream"
    format = "sse"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context=None) -> bytes:
        # Only errors reach here (401/404 before the stream starts): one SSE event.
        if data is None:
            return b""
        return f"event: error\ndata: {json.dumps(data, default=str)}\n\n".encode()
