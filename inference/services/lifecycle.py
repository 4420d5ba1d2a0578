"""The run's state machine: the only writer of ``Run.status``.  Claims an
attempt, finishes it (succeeded, failed, canceled), records what it cost in the
usage rollup, releases the budget reservation, and announces the change to
live subscribers and webhooks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F, Func, PositiveIntegerField, Value
from django.utils import timezone

from ..exceptions import AlreadyFinished
from ..models import Run, RunMedia, RunStatus
from . import budgets, live, pricing, webhooks
from . import usage as usage_rollup
from .media import media_url, store_media

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    result: Any
    usage: dict[str, Any] | None
    media: list[tuple[str, bytes, str]]  # (key, data, content_type)


class MillisecondsSince(Func):
    """Whole milliseconds from the second expression (a datetime column) to the
    first, never negative: ``queue_ms`` inside the claiming UPDATE."""

    output_field = PositiveIntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler, connection,
            template="GREATEST(0, FLOOR(EXTRACT(EPOCH FROM (%(expressions)s)) * 1000))::integer",
            arg_joiner=" - ", **extra,
        )

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores SQLite datetimes as ISO text, which julianday() reads.
        return self.as_sql(
            compiler, connection,
            template="MAX(0, CAST((julianday(%(expressions)s)) * 86400000 AS INTEGER))",
            arg_joiner=") - julianday(", **extra,
        )

    def as_sql(self, compiler, connection, **extra):
        if "template" not in extra:
            raise NotImplementedError(f"MillisecondsSince has no SQL for {connection.vendor}")
        return super().as_sql(compiler, connection, **extra)


def claim_attempt(run_id, attempt: int, *, created_at=None) -> bool:
    """Move the run into ``attempt`` with one conditional UPDATE.  A duplicate
    or stale message finds no matching row and does nothing.  ``queue_ms`` is
    written by the same UPDATE (computed in SQL unless the caller knows
    ``created_at``): the hot path used to pay a SELECT and a second UPDATE."""
    now = timezone.now()
    if attempt == 1:
        queue_ms = (
            max(0, int((now - created_at).total_seconds() * 1000))
            if created_at is not None
            else MillisecondsSince(Value(now), F("created_at"))
        )
        return bool(
            Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
                status=RunStatus.RUNNING, attempts=1, started_at=now, heartbeat_at=now, queue_ms=queue_ms
            )
        )
    return bool(
        Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, attempts=attempt - 1).update(
            attempts=attempt, heartbeat_at=now
        )
    )


def fail_unclaimed(run_id, attempt: int, *, code: int | None, message: str) -> bool:
    """Fail a run without recording a new attempt (nothing was sent upstream):
    not billed, its reservation released, counted in the rollup.  True if done."""
    now = timezone.now()
    # Nothing was sent upstream: nothing billed, and the budget reservation is released.
    cost = pricing.not_billed(message[:200])
    fields = dict(status=RunStatus.FAILED, error_code=code, error_message=message[:4000], error_retryable=False,
                  completed_at=now, reserved_usd=0, **cost.run_fields())
    with transaction.atomic():
        if attempt == 1:
            updated = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(**fields)
        else:
            updated = Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, attempts=attempt - 1).update(**fields)
        if updated:
            run = Run.objects.get(pk=run_id)
            # Counted in the rollup like every finished run (a failed run, $0).
            _record_usage(run, RunStatus.FAILED, cost, now)
            announce_finished(run, RunStatus.FAILED)
    return bool(updated)


def finish_succeeded(run: Run, attempt: int, outcome: Outcome, *, upstream_ms: int) -> None:
    now = timezone.now()
    # Priced from what was measured; written with the status, the rollup and the
    # budget reconciliation in one transaction.
    cost = pricing.safe_cost_of(run, usage=outcome.usage, result=outcome.result, outputs=outcome.media)
    with transaction.atomic():
        stored = [store_media(run, RunMedia.Role.OUTPUT, key, data, ctype) for key, data, ctype in outcome.media]
        result = outcome.result if outcome.result is not None else {}
        if isinstance(result, dict):
            result = dict(result)
            for media in stored:
                result[media.field] = media_url(media)
        updated = Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, attempts=attempt).update(
            status=RunStatus.SUCCEEDED, result=result, usage=outcome.usage, completed_at=now,
            upstream_ms=upstream_ms, error_code=None, error_message="", error_retryable=None,
            reserved_usd=0, **cost.run_fields(),
        )
        if updated:
            _record_usage(run, RunStatus.SUCCEEDED, cost, now)
            announce_finished(run, RunStatus.SUCCEEDED, output=True)
        else:
            # Canceled (or finished by the sweeper) while we were calling upstream:
            # the result is discarded; its files with it.
            transaction.set_rollback(True)
            for media in stored:
                media.file.delete(save=False)
            logger.info("run %s finished upstream after it was closed; result discarded", run.pk)
    if not updated:
        # The call was billed upstream even though its result is discarded.
        bill_canceled(run, attempt, usage=outcome.usage, cost=cost, upstream_ms=upstream_ms)


def finish_failed(run: Run, attempt: int, *, code: int | None, message: str, retryable: bool, upstream_ms: int | None = None, partial: dict | None = None) -> None:
    fields: dict[str, Any] = {
        "status": RunStatus.FAILED,
        "error_code": code,
        "error_message": message[:4000],
        "error_retryable": retryable,
        "completed_at": timezone.now(),
    }
    if upstream_ms is not None:
        fields["upstream_ms"] = upstream_ms
    if partial is not None:
        fields["result"] = partial
        fields["usage"] = partial.get("usage")
        # Partial output (a stream cut mid-way) was generated, so it is billed.
        cost = pricing.safe_cost_of(run, usage=partial.get("usage"), result=partial)
    else:
        cost = pricing.not_billed("Failed before the upstream produced output: nothing billed.")
    with transaction.atomic():
        if Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, attempts=attempt).update(
            **fields, reserved_usd=0, **cost.run_fields()
        ):
            _record_usage(run, RunStatus.FAILED, cost, fields["completed_at"])
            announce_finished(run, RunStatus.FAILED)
            return
    if partial is not None:
        # Canceled while the (cut) stream was read: what it generated was billed.
        bill_canceled(run, attempt, usage=partial.get("usage"), cost=cost, upstream_ms=upstream_ms)


def bill_canceled(run: Run, attempt: int, *, usage: dict | None, cost: pricing.Cost, upstream_ms: int | None = None) -> bool:
    """Record what a run canceled mid-call cost: upstream billed the call even
    though its result is discarded.  The usage, the price and the rollup row are
    written once, in one transaction (the rollup counts it under ``runs``, neither
    succeeded nor failed).  ``cost_reason`` still empty marks a canceled run not
    billed yet, so a second finisher records nothing.  True if recorded here."""
    reason = "Canceled mid-call: upstream billed it, the result was discarded."
    fields: dict[str, Any] = {
        **cost.run_fields(),
        "usage": usage,
        "cost_reason": f"{reason} {cost.reason}".strip()[:300],
    }
    if upstream_ms is not None:
        fields["upstream_ms"] = upstream_ms
    with transaction.atomic():
        updated = Run.objects.filter(
            pk=run.pk, status=RunStatus.CANCELED, attempts=attempt, cost_reason=""
        ).update(**fields)
        if updated:
            completed_at = Run.objects.filter(pk=run.pk).values_list("completed_at", flat=True).first()
            _record_usage(run, RunStatus.CANCELED, cost, completed_at)
    return bool(updated)


def _record_usage(run: Run, status: str, cost: pricing.Cost, at) -> None:
    usage_rollup.record(run, status, cost, at)
    crossed = budgets.alerts_after(run, cost.usd)
    if crossed:
        transaction.on_commit(lambda: budgets.send_alerts(crossed))


def announce_started(run: Run) -> None:
    """Tell live subscribers (and a ``start`` webhook) that attempt 1 began."""
    live.publish_status(run.pk, RunStatus.RUNNING)
    if run.webhook:
        webhooks.dispatch_on_commit(run.pk, "start")


def announce_finished(run: Run, status: str, *, output: bool = False) -> None:
    """Tell live subscribers and webhooks, once the final row is committed."""
    live.publish_done(run.pk, status)
    if not run.webhook:
        return
    if output:
        webhooks.dispatch_on_commit(run.pk, "output")
    webhooks.dispatch_on_commit(run.pk, "completed")


def cancel_run(run: Run) -> Run:
    """Cancel a queued or running run.  A worker mid-call sees the status change
    when it tries to finish, and discards its result."""
    now = timezone.now()
    updated = Run.objects.filter(pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
        status=RunStatus.CANCELED, completed_at=now, error_message="Canceled by the user.", reserved_usd=0
    )
    if updated:
        announce_finished(run, RunStatus.CANCELED)
    run.refresh_from_db()
    if not updated:  # status only moves forward: it was already terminal
        raise AlreadyFinished(run.status)
    return run
