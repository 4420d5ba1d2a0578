"""Inline execution, for the Cloudflare-compatible endpoint: the run is
recorded, then executed in the calling process (one attempt, no queue hop),
and Cloudflare's answer is relayed as it came."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import transaction

from ..client import BinaryResult, JSONResult, StreamResult
from ..exceptions import (
    InferenceConfigurationError,
    InferenceError,
    QuotaExceededError,
    UpstreamProtocolError,
)
from ..models import APIKey, Run, RunStatus
from . import live
from . import recovery as reliability
from .lifecycle import announce_started, claim_attempt, finish_failed, finish_succeeded
from .media import upstream_payload
from .submission import Submission, submit_run
from .upstream import (
    Outcome,
    elapsed_ms,
    outcome_from_response,
    request_upstream,
    stream_delta,
    upstream_account_id,
)

logger = logging.getLogger(__name__)


@dataclass
class InlineExecution:
    """A run executed in the calling process.  ``response`` is Cloudflare's own
    answer (JSON envelope contents or raw bytes) for a proxy to relay; for a
    stream, ``chunks`` yields the upstream bytes as they arrive and records the
    run when it ends."""

    run: Run
    response: JSONResult | BinaryResult | None = None
    chunks: Iterator[bytes] | None = None


def submit_inline(user, sub: Submission, *, api_key: APIKey | None = None) -> Run:
    """``submit_run`` without the queue, and the first attempt claimed, in one
    transaction: the run is recorded (history, budgets) before anything is sent
    upstream, with one commit where separate steps would take three."""
    with transaction.atomic():
        run, _created = submit_run(user, sub, api_key=api_key, enqueue=False)
        if run.status == RunStatus.QUEUED and claim_attempt(run.pk, 1, created_at=run.created_at):
            run.status, run.attempts = RunStatus.RUNNING, 1
    return run


def execute_inline(run: Run) -> InlineExecution:
    """Execute a run now, in this process (from ``submit_inline``, or a queued
    run): one attempt, no queue hop, no retry.  The caller speaks Cloudflare's
    protocol and retries a 429/3040 itself, as it would against Cloudflare.
    Upstream errors are recorded on the run and re-raised for the caller to
    relay; the same finish rules as the worker apply."""
    if run.status != RunStatus.RUNNING or run.attempts != 1:
        if not claim_attempt(run.pk, 1, created_at=run.created_at):
            raise InferenceError(f"Run {run.pk} is no longer queued")
        run.status, run.attempts = RunStatus.RUNNING, 1
    # The same per-account pause as the worker path: after a 3036 the account's
    # calls are refused here, not sent upstream to be refused again.
    account_id = upstream_account_id(run)
    message = reliability.pause_refusal(account_id)
    if message:
        refusal = QuotaExceededError(message, status_code=429, code=3036)
        finish_failed(run, 1, code=3036, message=str(refusal), retryable=False)
        raise refusal
    started = time.monotonic()
    # The same lease as a worker's attempt: the sweeper must not take a live
    # inline call for a dead worker's and send it upstream a second time.
    lease = reliability.heartbeats.start(run.pk, 1)
    announce_started(run)
    streaming = False
    try:
        response = request_upstream(run, upstream_payload(run))
        if isinstance(response, StreamResult):
            streaming = True  # relay_stream releases the lease when it ends
            return InlineExecution(run, chunks=relay_stream(run, response, started, lease))
        outcome = outcome_from_response(run, response)
    except InferenceConfigurationError as exc:
        finish_failed(run, 1, code=None, message=str(exc), retryable=False)
        raise
    except InferenceError as exc:
        if isinstance(exc, QuotaExceededError):
            reliability.pause_account(str(exc), account_id)
        finish_failed(run, 1, code=exc.code, message=str(exc), retryable=exc.retryable,
                      upstream_ms=elapsed_ms(started), partial=getattr(exc, "partial", None))
        raise
    except Exception as exc:  # never leave the run running
        finish_failed(run, 1, code=None, message=f"Internal error: {type(exc).__name__}: {exc}",
                      retryable=False, upstream_ms=elapsed_ms(started))
        raise
    finally:
        if not streaming:
            reliability.heartbeats.stop(lease)
    finish_succeeded(run, 1, outcome, upstream_ms=elapsed_ms(started))
    return InlineExecution(run, response=response)


def relay_stream(run: Run, stream: StreamResult, started: float, lease=None) -> Iterator[bytes]:
    """Yield the upstream SSE bytes unchanged as they arrive, while the stream
    accumulates text, tool calls and usage; record the run when it ends
    (``failed`` with the partial text and usage if it was cut short).

    If our caller hangs up, the generation is still billed upstream: the rest of
    the stream is read (not relayed) so its usage is recorded."""
    stream.keep_raw()
    error: BaseException | None = None
    try:
        try:
            for event in stream:
                text, fragments = stream_delta(event)
                if text or fragments:
                    # /api/runs/{id}/events/ shows compat streams live too.
                    live.publish(run.pk, "output", {"delta": text, **({"tool_calls": fragments} if fragments else {})})
                chunk = stream.take_raw()
                if chunk:
                    yield chunk
        except UpstreamProtocolError as exc:
            error = exc
        tail = stream.take_raw()  # [DONE], or what came before the cut
        if tail:
            yield tail
    except GeneratorExit:
        error = _drain(stream)
        raise
    except Exception as exc:
        logger.exception("run %s: stream relay failed", run.pk)
        error = exc
        raise
    finally:
        stream.close()
        try:
            _finish_stream(run, stream, error, elapsed_ms(started))
        finally:
            if lease is not None:
                reliability.heartbeats.stop(lease)


def _drain(stream: StreamResult) -> UpstreamProtocolError | None:
    try:
        stream.consume()
    except UpstreamProtocolError as exc:
        return exc
    return None


def _finish_stream(run: Run, stream: StreamResult, error: BaseException | None, upstream_ms: int) -> None:
    result = {"response": stream.text, "tool_calls": stream.tool_calls, "usage": stream.usage}
    if error is None and stream.done:
        finish_succeeded(run, 1, Outcome(result=result, usage=stream.usage, media=[]), upstream_ms=upstream_ms)
        return
    if isinstance(error, InferenceError):
        code, message = error.code, str(error)
    elif error is not None:
        code, message = None, f"Internal error: {type(error).__name__}: {error}"
    else:
        code, message = None, "Workers AI stream ended before [DONE]"
    finish_failed(run, 1, code=code, message=message, retryable=False, upstream_ms=upstream_ms, partial=result)
