"""Reading Cloudflare's JSON envelope and turning error answers into exceptions.

Pure functions over (status, headers, body bytes): no I/O, so every quirk is easy to
test.  The retry decision itself is not made here but in
``inference.exceptions.error_for_status``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from inference.exceptions import UpstreamError, UpstreamProtocolError, error_for_status

from .results import JSONResult

EXCERPT_CHARS = 300


def media_type(headers: Mapping[str, str]) -> str:
    """``"Application/JSON; charset=utf-8"`` → ``"application/json"``."""
    value = headers.get("Content-Type") or ""
    return value.split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def excerpt(body: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())  # one line: HTML error pages are mostly whitespace
    return text if len(text) <= limit else text[:limit] + "…"


def body_text(body: bytes, limit: int = 2000) -> str:
    """The raw body for an exception's ``body`` (for debugging: whitespace kept)."""
    return body[: limit * 4].decode("utf-8", errors="replace")[:limit]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date.

    Undocumented on Workers AI 429s, so honour it when present and otherwise leave
    backoff to the caller.  Garbage → ``None`` rather than an exception: a bad hint
    must not turn a retryable error into a crash.
    """
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 850 / asctime forms parse as naive: they are GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _first_error(errors: Any) -> tuple[int | None, str | None]:
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], Mapping):
        return None, None
    raw_code, message = errors[0].get("code"), errors[0].get("message")
    try:
        code = int(raw_code) if raw_code is not None else None
    except (TypeError, ValueError):
        code = None
    return code, str(message) if message else None


def _decode_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # includes UnicodeDecodeError
        return _INVALID


_INVALID = object()


def error_from_response(
    status_code: int,
    reason: str,
    headers: Mapping[str, str],
    body: bytes,
) -> UpstreamError:
    """The exception for an error answer (non-2xx, or a 2xx ``success: false``)."""
    retry_after = parse_retry_after(headers.get("Retry-After"))
    text = body_text(body)
    data = _decode_json(body) if is_json(media_type(headers)) else _INVALID
    if isinstance(data, Mapping):
        errors = data.get("errors")
        code, message = _first_error(errors)
        if message is None and isinstance(data.get("error"), str):
            message = data["error"]  # not the envelope, but a readable error anyway
        if code is not None or message is not None:
            return error_for_status(
                status_code,
                code,
                message or reason or "Workers AI error",
                retry_after=retry_after,
                body=text,
                errors=errors if isinstance(errors, list) else None,
            )
    # Not an envelope (an HTML page from a proxy, a bare text error …).
    message = reason or f"HTTP {status_code}"
    if body.strip():
        message = f"{message}: {excerpt(body)}"
    return error_for_status(status_code, None, message, retry_after=retry_after, body=text)


def unwrap_envelope(
    status_code: int,
    reason: str,
    headers: Mapping[str, str],
    body: bytes,
) -> JSONResult:
    """Unwrap a 2xx JSON answer, raising if it is not a successful envelope."""
    data = _decode_json(body)
    if data is _INVALID:
        raise UpstreamProtocolError(
            f"Workers AI answered HTTP {status_code} with a body that is not valid JSON: "
            f"{excerpt(body)!r}",
            status_code=status_code,
            body=body_text(body),
        )
    if not isinstance(data, Mapping) or ("success" not in data and "result" not in data):
        raise UpstreamProtocolError(
            "Workers AI answered JSON that is not a Cloudflare envelope "
            f"(no 'success' or 'result'): {excerpt(body)!r}",
            status_code=status_code,
            body=body_text(body),
        )
    if data.get("success") is False:
        # Cloudflare can say "success": false with a 200.
        raise error_from_response(status_code, reason, headers, body)
    if "result" not in data:
        raise UpstreamProtocolError(
            f"Workers AI envelope has no 'result': {excerpt(body)!r}",
            status_code=status_code,
            body=body_text(body),
        )
    messages = data.get("messages")
    info = data.get("result_info")
    return JSONResult(
        result=data["result"],
        headers=headers,
        status_code=status_code,
        messages=list(messages) if isinstance(messages, list) else [],
        result_info=dict(info) if isinstance(info, Mapping) else None,
    )
