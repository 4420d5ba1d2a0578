"""Fault injection for the emulator: a FIFO queue of faults and in-band markers.

Two ways to make the emulated upstream misbehave:

* **Queued faults** (``POST /_emulator/faults`` or ``EmulatorServer.add_fault``): a FIFO
  list; each run request consumes the first fault whose ``model`` pattern matches.
  Tests drive this from their own process while a Celery worker in another process
  makes the calls.
* **Markers** embedded in any string of the model input::

      [[emulator:fault=429_3040,times=2,key=job-17]]

  The first ``times`` requests carrying ``key`` get the fault, later ones succeed.
  Markers travel with the request itself, so soak tests with many concurrent runs can
  target exactly one run without racing on a shared queue.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    RATE_LIMITED = "429_3040"  # out of capacity: retryable with backoff
    DAILY_LIMIT = "429_3036"  # daily free allocation used up: not retryable until reset
    SERVER_ERROR = "500"
    SLOW = "slow"  # sleep delay_ms, then answer normally
    INVALID_JSON = "invalid_json"  # 200 + application/json, body is not JSON
    CUT_STREAM = "cut_stream"  # connection closed mid-body / mid-stream
    DROP = "drop"  # connection closed before any response byte


FAULT_KINDS: tuple[str, ...] = tuple(k.value for k in FaultKind)

# Default sleep of a "slow" fault when the caller gives no delay_ms.
DEFAULT_SLOW_MS = 1000


@dataclass
class Fault:
    kind: FaultKind
    model: str | None = None  # fnmatch pattern; None matches every model
    count: int = 1
    retry_after: float | None = None  # seconds, sent as Retry-After on 429s
    delay_ms: int | None = None

    def matches(self, model: str) -> bool:
        return self.model is None or fnmatch.fnmatchcase(model, self.model)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data


def parse_fault(data: Mapping[str, Any]) -> Fault:
    """Build a Fault from its JSON form; ValueError on anything malformed."""
    if not isinstance(data, Mapping):
        raise ValueError("a fault must be an object")
    try:
        kind = FaultKind(str(data.get("kind")))
    except ValueError:
        raise ValueError(f"unknown fault kind {data.get('kind')!r}; expected one of {FAULT_KINDS}") from None
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise ValueError("fault 'model' must be a string pattern")
    count = int(data.get("count", 1))
    if count < 1:
        raise ValueError("fault 'count' must be >= 1")
    retry_after = data.get("retry_after")
    delay_ms = data.get("delay_ms")
    return Fault(
        kind=kind,
        model=model,
        count=count,
        retry_after=float(retry_after) if retry_after is not None else None,
        delay_ms=int(delay_ms) if delay_ms is not None else None,
    )


class FaultQueue:
    """Thread-safe FIFO of pending faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take(self, model: str) -> Fault | None:
        """Consume one use of the first fault matching ``model``; a copy with count=1."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.matches(model):
                    fault.count -= 1
                    if fault.count <= 0:
                        del self._faults[index]
                    return Fault(fault.kind, fault.model, 1, fault.retry_after, fault.delay_ms)
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


MARKER_RE = re.compile(r"\[\[emulator:([^\]]*)\]\]")


@dataclass(frozen=True)
class Marker:
    fault: Fault
    times: int
    key: str


def parse_marker(body: str) -> Marker:
    """Parse the inside of ``[[emulator:...]]``: comma-separated ``name=value`` pairs.

    ``fault`` is required; ``times`` defaults to 1; ``key`` defaults to the marker text
    itself (so identical markers share one counter). ``retry_after`` and ``delay_ms``
    are passed on to the fault.
    """
    params: dict[str, str] = {}
    for part in body.split(","):
        name, sep, value = part.partition("=")
        if sep:
            params[name.strip()] = value.strip()
    fault = parse_fault(
        {
            "kind": params.get("fault"),
            "retry_after": params.get("retry_after"),
            "delay_ms": params.get("delay_ms"),
        }
    )
    times = int(params.get("times", 1))
    return Marker(fault=fault, times=times, key=params.get("key", body))


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        # Byte arrays (audio/image as lists of ints) can be megabytes long; only
        # descend into lists that may hold strings.
        for item in value:
            if isinstance(item, str | Mapping | list):
                yield from _strings(item)


def find_markers(payload: Any) -> list[Marker]:
    """Every well-formed marker in any string of ``payload`` (malformed ones are ignored)."""
    markers: list[Marker] = []
    for text in _strings(payload):
        if "[[emulator:" not in text:
            continue
        for match in MARKER_RE.finditer(text):
            try:
                markers.append(parse_marker(match.group(1)))
            except ValueError:
                continue
    return markers


class MarkerCounter:
    """Counts, per marker key, how many requests carried it (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, int] = {}

    def fault_for(self, markers: Iterable[Marker]) -> Fault | None:
        """The fault of the first marker whose key has not yet used up its ``times``."""
        chosen: Fault | None = None
        with self._lock:
            for marker in markers:
                hits = self._hits.get(marker.key, 0) + 1
                self._hits[marker.key] = hits
                if chosen is None and hits <= marker.times:
                    chosen = marker.fault
        return chosen

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._hits)

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()
