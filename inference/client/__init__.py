"""The Cloudflare Workers AI HTTP client.  Plain Python + requests: imports nothing
from Django models or settings; configuration comes in through the constructor."""

from .base import DEFAULT_BASE_URL, CloudflareAuth, RunResult, WorkersAIClient, model_path
from .envelope import parse_retry_after
from .results import BinaryResult, JSONResult
from .sse import SSEEvent, StreamResult, parse_sse

__all__ = [
    "DEFAULT_BASE_URL",
    "BinaryResult",
    "CloudflareAuth",
    "JSONResult",
    "RunResult",
    "SSEEvent",
    "StreamResult",
    "WorkersAIClient",
    "model_path",
    "parse_retry_after",
    "parse_sse",
]
