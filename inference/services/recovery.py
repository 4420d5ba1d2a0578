"""Reliability machinery: attempt leases (heartbeats), the sweeper, upstream pacing
(a Redis token bucket per account and rate class), the daily-allocation pause,
upstream timeouts and Idempotency-Key expiry.

The database stays the source of truth: every state change here is a conditional
UPDATE, so a duplicate message, a second sweeper or a redelivery after a crash can
never execute an attempt twice.  Redis only holds things that may be lost without
harm (rate-limit buckets, the pause flag, sweep de-duplication markers).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from .. import catalog
from ..conf import inference_settings
from ..connections import redis_client
from ..exceptions import DeadlineExceeded
from ..models import Run, RunStatus
from ..queue import enqueue_run
from . import lifecycle

logger = logging.getLogger(__name__)

# --- Redis ----------------------------------------------------------------------

def get_redis():
    """The pooled Redis client for commands, or None without Redis."""
    return redis_client("commands")


# --- Upstream pacing ------------------------------------------------------------
#
# A small Lua token bucket rather than the ``limits`` package: it needs no new
# dependency, is one atomic round trip, and returns *how long* to wait, which is
# exactly the countdown a worker needs to re-schedule the attempt without burning it.
# The clock is Redis's own (TIME), so workers with skewed clocks share one bucket.

_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = capacity; ts = now end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return tostring(wait)
"""

_scripts: dict[int, Any] = {}


def rate_limit_per_minute(model: str, task: str) -> tuple[str, float | None]:
    """(rate class, requests per minute) for a model, after overrides and scale."""
    spec = catalog.get_model(model)
    rate_class = spec.rate_limit_class if spec is not None else task
    overrides = inference_settings.RATE_LIMITS or {}
    limit = overrides.get(rate_class, catalog.RATE_LIMITS.get(rate_class))
    if limit is None:
        return rate_class, None
    return rate_class, float(limit) * float(inference_settings.RATE_LIMIT_SCALE)


def acquire_slot(model: str, task: str, account: str | None = None) -> float:
    """Take one upstream request slot.  Returns 0.0 when granted, otherwise the
    seconds to wait before asking again (nothing is taken then)."""
    if not inference_settings.RATE_LIMIT_ENABLED:
        return 0.0
    client = get_redis()
    rate_class, per_minute = rate_limit_per_minute(model, task)
    if client is None or not per_minute:
        return 0.0
    rate = per_minute / 60.0
    capacity = max(1.0, rate * float(inference_settings.RATE_LIMIT_BURST))
    account = account or inference_settings.ACCOUNT_ID
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_TOKEN_BUCKET)
    try:
        return float(script(keys=[f"cfai:rl:{account}:{rate_class}"], args=[rate, capacity]))
    except Exception:  # Redis down: pacing is an optimisation, never a reason to fail a run
        logger.warning("rate limiter unavailable; calling upstream unpaced", exc_info=True)
        return 0.0


# --- Daily allocation pause (3036) ----------------------------------------------


def _pause_key(account: str) -> str:
    return f"cfai:paused:{account}"


def next_utc_midnight(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def pause_account(message: str, account: str | None = None) -> None:
    """Cloudflare said 3036 (daily allocation used up; resets 00:00 UTC): stop
    calling upstream for this account until then."""
    client = get_redis()
    if client is None:
        return
    account = account or inference_settings.ACCOUNT_ID
    until = next_utc_midnight()
    try:
        client.set(_pause_key(account), message[:500], exat=int(until.timestamp()))
    except Exception:
        logger.warning("could not record the account pause", exc_info=True)


def account_paused(account: str | None = None) -> str | None:
    """The pause reason while the account is paused, else None."""
    client = get_redis()
    if client is None:
        return None
    try:
        value = client.get(_pause_key(account or inference_settings.ACCOUNT_ID))
    except Exception:
        return None
    return value.decode() if value else None


def pause_refusal(account: str | None = None) -> str | None:
    """Why a call for this account must not be sent upstream now (the 3036 pause),
    or None.  The one text the worker and the inline paths refuse with."""
    paused = account_paused(account)
    if not paused:
        return None
    return (
        "Not sent upstream: the Cloudflare account's daily allocation is used up (3036); "
        f"its work is paused until 00:00 UTC. Upstream said: {paused}"
    )


def clear_pause(account: str | None = None) -> None:
    client = get_redis()
    if client is not None:
        client.delete(_pause_key(account or inference_settings.ACCOUNT_ID))


# --- Timeouts -------------------------------------------------------------------


def upstream_timeout(run: Run) -> tuple[float, float]:
    """(connect, read) seconds for a call: the task's default read timeout,
    capped by what is left of the run's deadline."""
    timeouts = inference_settings.TASK_TIMEOUTS or {}
    read = float(timeouts.get(run.task, inference_settings.READ_TIMEOUT))
    connect = float(inference_settings.CONNECT_TIMEOUT)
    if run.deadline_at is not None:
        left = (run.deadline_at - timezone.now()).total_seconds()
        if left <= 0:
            raise DeadlineExceeded(deadline_message(run))
        read = min(read, left)
        connect = min(connect, left)
    return connect, read


def deadline_message(run: Run) -> str:
    return (
        f"Run deadline exceeded: not finished by {run.deadline_at:%Y-%m-%d %H:%M:%S} UTC "
        f"(RUN_DEADLINE={inference_settings.RUN_DEADLINE}s after submission)."
    )


# --- Leases (heartbeats) --------------------------------------------------------


@dataclass
class Lease:
    """The right to execute one attempt of one run.  ``lost`` is set when the
    heartbeat finds the run no longer in this attempt (canceled, finished by the
    sweeper, taken over): the holder must stop and must not write a result."""

    run_id: Any
    attempt: int
    lost: threading.Event = field(default_factory=threading.Event)


class _Heartbeats:
    """One daemon thread per process refreshes every active lease.  It exits (and
    closes its database connection) when the last lease ends, so an idle worker
    holds no extra connection."""

    def __init__(self) -> None:
        self._leases: dict[int, Lease] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._local = threading.local()

    def start(self, run_id, attempt: int) -> Lease:
        lease = Lease(run_id, attempt)
        with self._lock:
            self._leases[id(lease)] = lease
            if self._thread is None:
                self._wake.clear()
                self._thread = threading.Thread(target=self._loop, name="cfai-heartbeat", daemon=True)
                self._thread.start()
        self._local.lease = lease
        return lease

    def stop(self, lease: Lease) -> None:
        with self._lock:
            self._leases.pop(id(lease), None)
            if not self._leases:
                self._wake.set()
        if getattr(self._local, "lease", None) is lease:
            self._local.lease = None

    def current(self) -> Lease | None:
        return getattr(self._local, "lease", None)

    def _loop(self) -> None:
        try:
            while True:
                self._wake.wait(float(inference_settings.HEARTBEAT_INTERVAL))
                with self._lock:
                    leases = list(self._leases.values())
                    if not leases:
                        self._thread = None
                        return
                    self._wake.clear()
                for lease in leases:
                    self._beat(lease)
        finally:
            connection.close()

    def _beat(self, lease: Lease) -> None:
        try:
            refreshed = Run.objects.filter(
                pk=lease.run_id, status=RunStatus.RUNNING, attempts=lease.attempt
            ).update(heartbeat_at=timezone.now())
            if not refreshed:
                lease.lost.set()
        except Exception:
            # A dropped database connection: reconnect on the next beat.
            logger.warning("heartbeat for run %s failed", lease.run_id, exc_info=True)
            try:
                connection.close()
            except Exception:
                pass


heartbeats = _Heartbeats()


def current_lease() -> Lease | None:
    return heartbeats.current()


def stale_before() -> datetime:
    return timezone.now() - timedelta(seconds=float(inference_settings.HEARTBEAT_TIMEOUT))


def take_over(run_id) -> int | None:
    """Claim a running run whose worker is presumed dead (heartbeat stale).
    Returns the attempt number the caller now holds, or None.  One conditional
    UPDATE: of two messages racing (redelivery and sweeper), one wins."""
    run = Run.objects.filter(pk=run_id).only("status", "attempts", "heartbeat_at").first()
    if run is None or run.status != RunStatus.RUNNING:
        return None
    stale = stale_before()
    if run.heartbeat_at is not None and run.heartbeat_at >= stale:
        return None
    # The attempt number is left alone: the caller claims attempts+1 through the
    # normal claim, so it is recorded only once a call is really about to be made.
    won = Run.objects.filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True),
        pk=run_id, status=RunStatus.RUNNING, attempts=run.attempts,
    ).update(heartbeat_at=timezone.now())
    if not won:
        return None
    logger.warning("run %s: attempt %s lost its worker; taking over", run_id, run.attempts)
    return run.attempts + 1


# --- Sweeper --------------------------------------------------------------------


@dataclass
class SweepReport:
    requeued: int = 0
    recovered: int = 0
    expired: int = 0
    keys_cleared: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"requeued": self.requeued, "recovered": self.recovered, "expired": self.expired, "keys_cleared": self.keys_cleared}


def _first_time(marker: str, ttl: float) -> bool:
    """True once per ``ttl`` per marker: the sweeper does not re-enqueue the same
    run every pass while the first message is still on its way."""
    client = get_redis()
    if client is None:
        return True
    try:
        return bool(client.set(f"cfai:sweep:{marker}", 1, nx=True, px=max(1, int(ttl * 1000))))
    except Exception:
        return True


def sweep() -> SweepReport:
    """One pass of the sweeper; safe to run concurrently with itself."""
    s = inference_settings
    now = timezone.now()
    batch = int(s.SWEEP_BATCH)
    report = SweepReport()

    # Running past the deadline: fail, whatever the worker is doing (its finish is
    # conditional on status=running and will find nothing).
    for run in Run.objects.filter(status=RunStatus.RUNNING, deadline_at__lt=now).only("pk", "attempts", "deadline_at")[:batch]:
        lifecycle.finish_failed(run, run.attempts, code=None, message=deadline_message(run), retryable=False)
        report.expired += 1
    # Queued past the deadline (e.g. waiting on a paused account's pacing): fail too.
    for run in Run.objects.filter(status=RunStatus.QUEUED, deadline_at__lt=now).only("pk", "deadline_at")[:batch]:
        # Never sent upstream: not billed, reservation released, counted in the
        # rollup once — the same finish as every run failed before its call.
        if lifecycle.fail_unclaimed(run.pk, 1, code=None, message=deadline_message(run)):
            report.expired += 1

    # Queued for too long: the message may be gone (broker flushed or restarted).
    # A duplicate is harmless: the claim is conditional.
    queued_after = float(s.SWEEP_QUEUED_AFTER)
    old = now - timedelta(seconds=queued_after)
    for pk in Run.objects.filter(status=RunStatus.QUEUED, created_at__lt=old).order_by("created_at").values_list("pk", flat=True)[:batch]:
        if _first_time(f"q:{pk}", queued_after):
            enqueue_run(pk, 1)
            report.requeued += 1

    # Running with a stale heartbeat: the worker died mid-attempt (a SIGKILL does
    # not return the late-acked message before the broker's visibility timeout).
    stale = stale_before()
    for pk, attempts in (
        Run.objects.filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True), status=RunStatus.RUNNING)
        .values_list("pk", "attempts")[:batch]
    ):
        if _first_time(f"r:{pk}:{attempts}", float(s.HEARTBEAT_TIMEOUT)):
            enqueue_run(pk, attempts)
            report.recovered += 1

    report.keys_cleared = purge_expired_idempotency_keys(batch=batch)
    if report.requeued or report.recovered or report.expired:
        logger.info("sweep: %s", report.as_dict())
    return report


def idempotency_cutoff() -> datetime:
    return timezone.now() - timedelta(seconds=float(inference_settings.IDEMPOTENCY_TTL))


def purge_expired_idempotency_keys(user=None, key: str | None = None, batch: int = 1000) -> int:
    """Forget Idempotency-Keys older than IDEMPOTENCY_TTL, so the key may be used
    again (the runs stay; only the key is cleared)."""
    runs = Run.objects.exclude(idempotency_key="").filter(created_at__lt=idempotency_cutoff())
    if user is not None:
        runs = runs.filter(user=user)
    if key is not None:
        runs = runs.filter(idempotency_key=key)
    pks = list(runs.values_list("pk", flat=True)[:batch])
    if not pks:
        return 0
    return Run.objects.filter(pk__in=pks).update(idempotency_key="")
