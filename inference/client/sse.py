"""Server-sent events from Workers AI: a small parser and the streamed result.

Why not ``response.iter_lines()``: it splits each chunk with ``splitlines()`` on its
own, so a ``\\r\\n`` that straddles two chunks yields a phantom blank line, and a blank
line *ends an SSE event* — a multi-line event would be cut in two.  Splitting bytes
ourselves (and decoding each finished line) also keeps a UTF-8 character that
straddles two chunks intact.  The format itself is the WHATWG one: events end at a
blank line, ``data:`` lines join with ``\\n``, lines starting with ``:`` are comments.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar

import requests
import urllib3.exceptions

from inference.exceptions import UpstreamProtocolError

DONE = "[DONE]"

# What a dropped connection looks like while we read a body that has already started:
# requests wraps urllib3's errors (ChunkedEncodingError, ConnectionError for a read
# timeout), urllib3 raises its own when we read ``raw`` directly, and http.client /
# the socket can leak through either.
STREAM_READ_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


@dataclass(frozen=True)
class SSEEvent:
    data: str
    event: str | None = None
    id: str | None = None
    # False for an event the stream ended in the middle of (no closing blank line):
    # it may be truncated, so callers should not trust it blindly.
    complete: bool = True


def _iter_lines(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Yield ``(line, terminated)`` with CR, LF or CRLF endings removed."""
    pending = b""
    for chunk in chunks:
        if not chunk:
            continue
        pending += chunk
        lines = pending.splitlines(keepends=True)
        pending = b""
        # The last piece is unfinished unless it ends in LF; one ending in CR may still
        # be the first half of a CRLF whose LF is in the next chunk.
        if not lines[-1].endswith(b"\n"):
            pending = lines.pop()
        for line in lines:
            yield line.rstrip(b"\r\n"), True
    if pending:
        # A lone CR at the very end is a complete line; anything else is cut short.
        yield pending.rstrip(b"\r"), pending.endswith(b"\r")


def parse_sse(source: bytes | str | Iterable[bytes | str]) -> Iterator[SSEEvent]:
    """Parse an SSE body, given whole or as chunks split at arbitrary points.

    Events are yielded as they complete, so a live stream is parsed incrementally.
    ``[DONE]`` is an ordinary event here; ``StreamResult`` gives it its meaning.
    """
    if isinstance(source, str | bytes):
        source = [source]
    chunks = (c.encode("utf-8") if isinstance(c, str) else c for c in source)

    data: list[str] = []
    event: str | None = None
    last_id: str | None = None
    first = True
    for raw_line, terminated in _iter_lines(chunks):
        line = raw_line.decode("utf-8", errors="replace")
        if first:
            line = line.removeprefix("\ufeff")
            first = False
        if not line:
            if data:
                yield SSEEvent("\n".join(data), event, last_id)
            data, event = [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
            if not terminated:
                # The connection ended inside this very line.
                yield SSEEvent("\n".join(data), event, last_id, complete=False)
                return
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            last_id = value
        # "retry" and unknown fields are ignored, as the spec says.
    if data:
        # Ended after a full line but before the blank line that closes the event.
        yield SSEEvent("\n".join(data), event, last_id, complete=False)


def _merge_fragment(target: dict[str, Any], fragment: Mapping[str, Any]) -> None:
    """Merge one streamed tool-call fragment into the call it continues.

    OpenAI-style fragments send ``id``/``type``/``function.name`` once and then
    ``function.arguments`` in pieces that must be concatenated.  Older Workers AI
    models send a whole call (``{"name", "arguments": {...}}``) in one event.
    """
    for key, value in fragment.items():
        if key == "index":
            continue
        current = target.get(key)
        if isinstance(value, Mapping):
            if not isinstance(current, dict):
                current = target[key] = {}
            _merge_fragment(current, value)
        elif key == "arguments" and isinstance(value, str) and isinstance(current, str):
            target[key] = current + value
        elif value is None or value == "":
            target.setdefault(key, value)
        else:
            target[key] = value


class StreamResult:
    """A Workers AI text stream: iterate it for the parsed JSON events (dicts).

    While iterating it accumulates ``text``, ``tool_calls`` and ``usage`` so that a
    caller who only wants the outcome can call ``consume()``, and a caller whose
    stream breaks still holds the partial text and usage it got (usage is billed
    upstream even for a cut-short stream, so it must not be lost).

    A stream that ends without ``[DONE]``, or whose connection drops, raises
    ``UpstreamProtocolError`` from the iteration; the error is also kept in ``error``.
    """

    kind: ClassVar[str] = "stream"

    def __init__(
        self,
        chunks: Iterable[bytes],
        *,
        headers: Mapping[str, str] | None = None,
        status_code: int = 200,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.status_code = status_code
        self.usage: dict[str, Any] | None = None
        self.done = False
        self.error: UpstreamProtocolError | None = None
        self.event_count = 0
        self._parts: list[str] = []
        self._tool_calls: dict[int, dict[str, Any]] = {}
        self._chunks = chunks
        self._on_close = on_close
        self._closed = False
        # Bytes read from the wire, kept only for a proxy that relays them unchanged.
        self._raw: bytearray | None = None
        self._events = self._generate()

    # -- accumulated outcome ------------------------------------------------------

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return [{"index": index, **call} for index, call in sorted(self._tool_calls.items())]

    # -- iteration ----------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._closed:
            # Closed by the caller (or finished): never resume reading a released body.
            raise StopIteration
        return next(self._events)

    def keep_raw(self) -> None:
        """Keep the bytes read from now on, for ``take_raw``: a proxy relays the
        upstream's own bytes (exact framing, padding and all) while this object
        still parses them and accumulates text and usage."""
        if self._raw is None:
            self._raw = bytearray()

    def take_raw(self) -> bytes:
        """The raw bytes read since the last call (all of each event yielded so far,
        possibly the start of the next one)."""
        if not self._raw:
            return b""
        data = bytes(self._raw)
        self._raw.clear()
        return data

    def consume(self) -> StreamResult:
        """Read the rest of the stream (raising if it breaks) and return ``self``."""
        for _ in self:
            pass
        return self

    def _generate(self) -> Iterator[dict[str, Any]]:
        try:
            for sse in parse_sse(self._read_chunks()):
                if sse.data.strip() == DONE:
                    # Anything after [DONE] is not read: Cloudflare ends the body there,
                    # and draining a misbehaving server would block until the timeout.
                    self.done = True
                    return
                try:
                    payload = json.loads(sse.data)
                except ValueError:
                    if not sse.complete:
                        # Half a JSON object at the end of the body: the stream was
                        # cut, the data itself is not to blame.
                        break
                    raise self._fail(
                        f"Workers AI stream sent invalid JSON in an event: {sse.data[:200]!r}",
                        body=sse.data,
                    ) from None
                if not isinstance(payload, dict):
                    raise self._fail(
                        "Workers AI stream sent an event that is not a JSON object",
                        body=sse.data,
                    )
                self._accumulate(payload)
                self.event_count += 1
                yield payload
            if not self._closed:
                raise self._fail(
                    f"Workers AI stream was cut short: it ended before [DONE] "
                    f"after {_plural_events(self.event_count)}"
                )
        except _Interrupted as exc:
            raise self._fail(
                f"Workers AI stream was cut short: the connection failed after "
                f"{_plural_events(self.event_count)} ({exc.__cause__.__class__.__name__}: "
                f"{exc.__cause__})"
            ) from exc.__cause__
        finally:
            self.close()

    def _read_chunks(self) -> Iterator[bytes]:
        iterator = iter(self._chunks)
        while not self._closed:
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            except STREAM_READ_ERRORS as exc:
                if self._closed:  # our own close() racing a read: not an upstream fault
                    return
                raise _Interrupted() from exc
            if self._raw is not None:
                self._raw += chunk
            yield chunk

    def _fail(self, message: str, *, body: str | None = None) -> UpstreamProtocolError:
        self.error = UpstreamProtocolError(message, status_code=self.status_code, body=body)
        return self.error

    def _accumulate(self, event: Mapping[str, Any]) -> None:
        response = event.get("response")
        if isinstance(response, str):
            self._parts.append(response)
        elif isinstance(response, int | float) and not isinstance(response, bool):
            # Some models stream a bare number (a classifier-ish answer): keep it as text.
            self._parts.append(str(response))

        fragments: Any = event.get("tool_calls")
        choices = event.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            # OpenAI-compatible models stream chat.completion.chunk objects.
            delta = choices[0].get("delta")
            if isinstance(delta, Mapping):
                if response is None and isinstance(delta.get("content"), str):
                    self._parts.append(delta["content"])
                fragments = fragments or delta.get("tool_calls")
        if isinstance(fragments, list):
            for fragment in fragments:
                if isinstance(fragment, Mapping):
                    index = fragment.get("index")
                    if not isinstance(index, int):
                        # A whole call without an index: it is a call of its own.
                        index = max(self._tool_calls, default=-1) + 1
                    _merge_fragment(self._tool_calls.setdefault(index, {}), fragment)

        usage = event.get("usage")
        if isinstance(usage, Mapping):
            # The last event that carries usage wins; keep every key (neurons, …).
            self.usage = dict(usage)

    # -- lifetime -----------------------------------------------------------------

    def close(self) -> None:
        """Stop reading and release the connection.  Closing early is not an error."""
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> StreamResult:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<StreamResult events={self.event_count} done={self.done} "
            f"chars={len(self.text)} closed={self._closed}>"
        )


def _plural_events(count: int) -> str:
    return f"{count} event" if count == 1 else f"{count} events"


class _Interrupted(Exception):
    """Internal: a transport error while reading the stream (kept as __cause__)."""
