"""Executing a run on a worker: the attempt pipeline (pause, pacing, claim,
call, finish), the retry policy with backoff, and waiting for a run to end."""

from __future__ import annotations

import logging
import random
import time
from datetime import timedelta

from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

from ..conf import inference_settings
from ..exceptions import (
    InferenceConfigurationError,
    InferenceError,
    QuotaExceededError,
    RunCanceled,
)
from ..models import Run, RunStatus
from ..queue import enqueue_run
from . import live, pricing
from . import recovery as reliability
from .lifecycle import (
    announce_started,
    bill_canceled,
    claim_attempt,
    fail_unclaimed,
    finish_failed,
    finish_succeeded,
)
from .media import upstream_payload
from .upstream import call_upstream, elapsed_ms, upstream_account_id

logger = logging.getLogger(__name__)


def backoff_delay(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter; an upstream Retry-After wins."""
    if retry_after is not None and retry_after >= 0:
        return min(float(retry_after), float(inference_settings.RETRY_BACKOFF_MAX))
    cap = min(
        float(inference_settings.RETRY_BACKOFF_MAX),
        float(inference_settings.RETRY_BACKOFF_BASE) * (2 ** (attempt - 1)),
    )
    return random.uniform(cap / 2, cap)


def execute_run(run_id, attempt: int = 1) -> None:
    """Execute one attempt of a run.  Called by the Celery job with ids only.

    Order matters: a message that cannot claim anything returns before taking a
    rate-limit slot; a paused account fails the run without calling upstream; a
    worker without a slot re-schedules the same attempt (nothing recorded)."""
    run = Run.objects.filter(pk=run_id).only("status", "attempts", "model", "task", "heartbeat_at", "team_id").first()
    if run is None or run.is_terminal:
        return
    if run.status == RunStatus.RUNNING and run.attempts >= attempt:
        # A redelivery (or the sweeper) for an attempt whose worker may be dead.
        taken = reliability.take_over(run_id)
        if taken is None:
            logger.info("run %s attempt %s: nothing to do (duplicate or attempt alive)", run_id, attempt)
            return
        attempt = taken
        if attempt > int(inference_settings.MAX_ATTEMPTS):
            _db_retry(
                finish_failed,
                run, attempt - 1, code=None, retryable=True,
                message=f"The worker executing attempt {attempt - 1} was lost and no attempts are left "
                f"(MAX_ATTEMPTS={inference_settings.MAX_ATTEMPTS}).",
            )
            return
    elif not ((attempt == 1 and run.status == RunStatus.QUEUED) or (run.status == RunStatus.RUNNING and run.attempts == attempt - 1)):
        logger.info("run %s attempt %s: nothing to do (duplicate or finished)", run_id, attempt)
        return

    # Paused and paced per Cloudflare account actually used: a team's own account
    # running out of its daily allocation stops that team only.
    account_id = upstream_account_id(run)
    refusal = reliability.pause_refusal(account_id)
    if refusal:
        fail_unclaimed(run_id, attempt, code=3036, message=refusal)
        return
    wait = reliability.acquire_slot(run.model, run.task, account=account_id)
    if wait > 0:
        # No slot: the same attempt again later; the attempt is not burned.
        if attempt > 1:
            Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, attempts=attempt - 1).update(
                heartbeat_at=timezone.now() + timedelta(seconds=wait)
            )
        enqueue_run(run_id, attempt, countdown=wait + random.uniform(0, 0.05))
        return

    if not claim_attempt(run_id, attempt):
        logger.info("run %s attempt %s: nothing to do (duplicate or finished)", run_id, attempt)
        return
    run = Run.objects.get(pk=run_id)
    if attempt == 1:
        announce_started(run)
    lease = reliability.heartbeats.start(run_id, attempt)
    try:
        _execute_claimed(run, attempt)
    finally:
        reliability.heartbeats.stop(lease)


def _db_retry(fn, *args, **kwargs):
    """Run a finishing write; if the database connection was dropped under us
    (server restart, pg_terminate_backend), reconnect and try once more."""
    try:
        return fn(*args, **kwargs)
    except (OperationalError, InterfaceError):
        logger.warning("database connection lost while finishing a run; reconnecting", exc_info=True)
        connection.close()
        return fn(*args, **kwargs)


def _execute_claimed(run: Run, attempt: int) -> None:
    run_id = run.pk
    started = time.monotonic()
    try:
        payload = upstream_payload(run)
        outcome = call_upstream(run, payload)
    except reliability.DeadlineExceeded as exc:
        _db_retry(finish_failed, run, attempt, code=None, message=str(exc), retryable=False)
        return
    except InferenceConfigurationError as exc:
        _db_retry(finish_failed, run, attempt, code=None, message=str(exc), retryable=False)
        return
    except RunCanceled as exc:
        # Canceled mid-stream: the result is discarded, the partial usage is kept
        # (it was billed upstream).
        partial = getattr(exc, "partial", None) or {}
        upstream_ms = elapsed_ms(started)
        _db_retry(bill_canceled, run, attempt, usage=partial.get("usage"), upstream_ms=upstream_ms,
                  cost=pricing.safe_cost_of(run, usage=partial.get("usage"), result=partial))
        return
    except InferenceError as exc:
        upstream_ms = elapsed_ms(started)
        if isinstance(exc, QuotaExceededError):
            reliability.pause_account(str(exc), upstream_account_id(run))
        if exc.retryable and attempt < int(inference_settings.MAX_ATTEMPTS):
            delay = backoff_delay(attempt, exc.retry_after)
            if run.deadline_at is not None and timezone.now() + timedelta(seconds=delay) >= run.deadline_at:
                _db_retry(finish_failed, run, attempt, code=exc.code, retryable=exc.retryable, upstream_ms=upstream_ms,
                          message=f"{exc}; no retry: the next attempt would start after the run deadline.")
                return
            # The lease is extended over the backoff, so the sweeper does not take
            # a scheduled retry for a dead worker.
            _db_retry(Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, attempts=attempt).update,
                error_code=exc.code, error_message=f"Attempt {attempt} failed: {exc}; retrying in {delay:.1f}s",
                error_retryable=True, upstream_ms=upstream_ms,
                heartbeat_at=timezone.now() + timedelta(seconds=delay),
            )
            enqueue_run(run_id, attempt + 1, countdown=delay)
            return
        _db_retry(finish_failed, run, attempt, code=exc.code, message=str(exc), retryable=exc.retryable, upstream_ms=upstream_ms, partial=getattr(exc, "partial", None))
        return
    except Exception as exc:  # a bug must not leave the run running forever
        logger.exception("run %s: unexpected error", run_id)
        _db_retry(finish_failed, run, attempt, code=None, message=f"Internal error: {type(exc).__name__}: {exc}", retryable=False)
        return
    _db_retry(finish_succeeded, run, attempt, outcome, upstream_ms=elapsed_ms(started))


def wait_for_run(run_id, timeout: float) -> Run:
    """Block up to ``timeout`` seconds for the run to finish; return it as it
    stands.  Listens on the run's live channel when Redis is configured (no
    database polling while it waits), polls the database otherwise."""
    deadline = time.monotonic() + timeout
    subscription = None
    if live.enabled():
        try:
            subscription = live.Subscription(run_id, replay=False)  # the row is the truth, not the backlog
        except Exception as exc:  # Redis away: fall back to polling
            logger.warning("run %s: waiting by polling (%s)", run_id, exc)
    if subscription is None:
        return _poll_for_run(run_id, deadline)
    with subscription:
        while True:
            # Read after subscribing: a finish committed since is either seen here
            # or announced on the channel.
            run = Run.objects.get(pk=run_id)
            remaining = deadline - time.monotonic()
            if run.is_terminal or remaining <= 0:
                return run
            # Re-read at least every 2 s: a publish lost while Redis blinked must
            # not hold the caller for the whole wait.
            try:
                event = subscription.next_live(min(remaining, 2.0))
                while event is not None and event.event != "done":
                    event = subscription.next_live(max(0.0, min(deadline - time.monotonic(), 2.0)))
            except Exception as exc:  # Redis went away mid-wait: poll out the rest
                logger.warning("run %s: waiting by polling (%s)", run_id, exc)
                return _poll_for_run(run_id, deadline)


def _poll_for_run(run_id, deadline: float) -> Run:
    interval = 0.01
    while True:
        run = Run.objects.get(pk=run_id)
        if run.is_terminal or time.monotonic() >= deadline:
            return run
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.2)
