"""What ``WorkersAIClient.run`` returns for the JSON and raw-bytes kinds of answer.

The third kind, a server-sent-event stream, is ``sse.StreamResult``.  Each class has a
``kind`` so callers can dispatch without ``isinstance`` chains.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class JSONResult:
    """A ``{"success": true, "result": …}`` envelope, unwrapped."""

    kind: ClassVar[str] = "json"

    result: Any
    headers: Mapping[str, str]
    status_code: int
    messages: list[Any] = field(default_factory=list)
    # Pagination of list endpoints (``page``, ``per_page``, ``count``, ``total_count``).
    result_info: dict[str, Any] | None = None


@dataclass(frozen=True)
class BinaryResult:
    """Raw bytes with no envelope (SDXL PNGs, phoenix JPEGs, aura audio …)."""

    kind: ClassVar[str] = "binary"

    content: bytes
    # The media type without parameters, lower-cased ("image/png").
    content_type: str
    headers: Mapping[str, str]
    status_code: int

    def __repr__(self) -> str:
        # Never dump megabytes of image into a log line or a traceback.
        return (
            f"BinaryResult(content=<{len(self.content)} bytes>, "
            f"content_type={self.content_type!r}, status_code={self.status_code})"
        )
