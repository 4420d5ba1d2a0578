"""Serving a blocking byte iterator (the relayed upstream stream) from ASGI.

Django's ASGI handler consumes a *synchronous* streaming body whole before it
sends a byte (``sync_to_async(list)``), which would turn SSE passthrough into one
late blob.  Running the iterator in ``sync_to_async`` chunk by chunk is no better:
thread-sensitive calls share one thread across all requests, and a long upstream
read would stall them.  So each relayed stream gets a thread of its own (the
upstream read is blocking I/O in ``requests`` anyway) that hands chunks to the
event loop as they arrive.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

from django.db import connections

_END = object()


async def iterate_in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is gone: nobody is listening any more
            pass

    def pump() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    break
                put(chunk)
        except Exception as exc:
            put(exc)
        finally:
            try:
                # A client that left: closing the generator makes it read the rest of
                # the upstream stream for its usage and record the run.
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            finally:
                connections.close_all()  # this thread's own database connections
                put(_END)

    threading.Thread(target=pump, name="cfai-compat-relay", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
