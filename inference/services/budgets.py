"""Budgets: reserve at submission, reconcile at completion.

One comparison decides everything (``reaches``): a submission is refused when
what is spent plus what is reserved plus this run's estimate *reaches* the
limit, and a soft alert fires when spending reaches ``limit × soft_threshold``.

Concurrency: the applicable Budget rows are locked (SELECT … FOR UPDATE, in id
order so two submissions never deadlock) inside the transaction that inserts
the run with its reservation.  A second submission waits for the first to
commit and then sees its reservation, so parallel submissions cannot jointly
overspend.  At completion the reservation is dropped (the run leaves
queued/running) and its real cost lands in UsageDaily in the same transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime, time
from decimal import Decimal

from django.db.models import DecimalField, F, Func, Q, Subquery
from django.dispatch import Signal
from django.utils import timezone

from ..conf import inference_settings
from ..exceptions import SubmissionError
from ..models import (
    Budget,
    Run,
    RunStatus,
    UsageDaily,
)
from ..money import format_usd

logger = logging.getLogger(__name__)

# Sent (after commit) when a run's cost makes a budget reach its soft threshold
# or its limit.  kwargs: budget, spent (Decimal), limit (Decimal), level ("soft" | "limit").
budget_threshold_reached = Signal()

ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


def reaches(amount: Decimal, limit: Decimal) -> bool:
    """The single budget comparison used everywhere: reaching the limit counts."""
    return amount >= limit


def period_start(period: str, now: datetime | None = None) -> datetime | None:
    now = timezone.localtime(now or timezone.now())
    if period == Budget.Period.DAY:
        return timezone.make_aware(datetime.combine(now.date(), time.min), now.tzinfo)
    if period == Budget.Period.MONTH:
        return timezone.make_aware(datetime.combine(now.date().replace(day=1), time.min), now.tzinfo)
    return None


def budgets_for(user, team) -> Q:
    """Budgets that apply to a run of ``user`` (with ``team``); instances or ids."""
    scope = Q(user=user)
    if team is not None:
        scope |= Q(team=team)
    return scope


def spent(budget: Budget, now: datetime | None = None) -> Decimal:
    """Reconciled spend in the budget's period plus open reservations.

    One SQL statement, so both sums come from one snapshot: a run finishing
    in between (reservation dropped, cost added, in one commit) is counted
    exactly once, never zero times."""
    start = period_start(budget.period, now)
    usage = UsageDaily.objects.all()
    active = Run.objects.filter(status__in=ACTIVE)
    if budget.user_id:
        usage, active = usage.filter(user_id=budget.user_id), active.filter(user_id=budget.user_id)
    else:
        usage, active = usage.filter(team_id=budget.team_id), active.filter(team_id=budget.team_id)
    if start is not None:
        usage = usage.filter(day__gte=start.date())
        active = active.filter(created_at__gte=start)
    # SUM() without GROUP BY inside each subquery: one row each.
    done_sq = usage.order_by().annotate(s=Func(F("cost_usd"), function="SUM")).values("s")[:1]
    reserved_sq = active.order_by().annotate(s=Func(F("reserved_usd"), function="SUM")).values("s")[:1]
    row = (
        Budget.objects.filter(pk=budget.pk)
        .annotate(done=Subquery(done_sq, output_field=DecimalField()), reserved=Subquery(reserved_sq, output_field=DecimalField()))
        .values_list("done", "reserved")
        .first()
    )
    done, reserved = row if row else (None, None)
    return Decimal(done or 0) + Decimal(reserved or 0)


def soft_limit(budget: Budget) -> Decimal:
    return budget.limit_usd * budget.soft_threshold


def status(budget: Budget, now: datetime | None = None) -> tuple[Decimal, str]:
    """(spent, "ok" | "soft" | "reached") for displays (admin highlight)."""
    amount = spent(budget, now)
    if reaches(amount, budget.limit_usd):
        return amount, "reached"
    if reaches(amount, soft_limit(budget)):
        return amount, "soft"
    return amount, "ok"


def reserve(run: Run, estimate: Decimal | None) -> None:
    """Check every budget of the run's user and team and reserve ``estimate``.
    Must run inside the transaction that inserts ``run``.  Raises
    ``services.SubmissionError`` (402) naming the first budget it would reach.

    ``estimate`` None means the model's price is unknown: never counted as $0.
    ``UNKNOWN_PRICE_POLICY`` "refuse" refuses the run when any budget applies,
    "estimate" reserves ``UNKNOWN_PRICE_ESTIMATE_USD`` instead."""

    budgets = list(
        Budget.objects.select_for_update()
        .filter(budgets_for(run.user, run.team), active=True)
        .order_by("pk")
    )
    if estimate is None:
        if inference_settings.UNKNOWN_PRICE_POLICY == "estimate":
            estimate = Decimal(str(inference_settings.UNKNOWN_PRICE_ESTIMATE_USD))
        elif budgets:
            raise SubmissionError(
                {
                    "model": [f"The price of {run.model} is unknown, and budget {budgets[0].name!r} applies: "
                              "runs of unpriced models are refused under a budget "
                              "(INFERENCE['UNKNOWN_PRICE_POLICY'])."],
                    "budget": budgets[0].name,
                },
                status=402,
            )
        else:
            estimate = Decimal(0)
    for budget in budgets:
        amount = spent(budget)
        if reaches(amount + estimate, budget.limit_usd):
            raise SubmissionError(
                {
                    "detail": f"Budget {budget.name!r} would be reached: limit ${format_usd(budget.limit_usd)}, "
                    f"spent ${format_usd(amount)}, this run up to ${format_usd(estimate)}.",
                    "budget": budget.name,
                    "limit": format_usd(budget.limit_usd),
                    "spent": format_usd(amount),
                },
                status=402,
            )
    run.reserved_usd = estimate


def alerts_after(run: Run, cost_usd: Decimal | None) -> list[tuple[Budget, Decimal, str]]:
    """Budgets that this run's cost pushed over their soft threshold or limit.
    Called after the rollup was written, inside the finishing transaction."""
    if not cost_usd:
        return []
    crossed = []
    for budget in Budget.objects.filter(budgets_for(run.user_id, run.team_id), active=True):
        after = spent(budget)
        before = after - cost_usd
        for level, line in (("limit", budget.limit_usd), ("soft", soft_limit(budget))):
            if reaches(after, line) and not reaches(before, line):
                crossed.append((budget, after, level))
                break
    return crossed


def send_alerts(crossed: list[tuple[Budget, Decimal, str]]) -> None:
    for budget, amount, level in crossed:
        logger.warning("budget %s reached its %s: spent $%s of $%s", budget.name, level, amount, budget.limit_usd)
        budget_threshold_reached.send(
            sender=Budget, budget=budget, spent=amount, limit=budget.limit_usd, level=level
        )
