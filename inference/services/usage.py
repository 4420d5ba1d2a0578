"""The daily usage rollup: written when a run finishes, read by /api/usage/ and
the admin dashboard (which therefore never scan the run table)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet, Sum
from django.utils import timezone

from ..models import (
    Run,
    RunStatus,
    TeamMembership,
    UsageDaily,
)
from .pricing import Cost

GROUPS = {
    "model": "model",
    "task": "task",
    "user": "user__username",
    "team": "team__slug",
    "day": "day",
}
SUMS = ("runs", "succeeded", "failed", "input_tokens", "output_tokens", "cost_usd", "neurons", "estimated_runs", "unknown_cost_runs")


def record(run: Run, status: str, cost: Cost, at=None) -> None:
    """Add a finished run to its (day, user, team, model, task) row.  Call inside
    the transaction that finishes the run."""
    day = timezone.localdate(at or timezone.now())
    key = {"day": day, "user_id": run.user_id, "team_id": run.team_id, "model": run.model, "task": run.task}
    deltas = {
        "runs": 1,
        "succeeded": int(status == RunStatus.SUCCEEDED),
        "failed": int(status == RunStatus.FAILED),
        "input_tokens": cost.input_tokens,
        "output_tokens": cost.output_tokens,
        "cost_usd": cost.usd or Decimal(0),
        "neurons": cost.neurons or Decimal(0),
        "estimated_runs": int(cost.usd is not None and cost.estimated),
        "unknown_cost_runs": int(cost.usd is None and cost.billable),
    }
    increments = {name: F(name) + value for name, value in deltas.items()}
    if UsageDaily.objects.filter(**key).update(**increments):
        return
    try:
        with transaction.atomic():  # a savepoint: a racing insert must not abort the caller
            UsageDaily.objects.create(**key, **deltas)
    except IntegrityError:
        UsageDaily.objects.filter(**key).update(**increments)


def visible_usage(user) -> QuerySet[UsageDaily]:
    """The same scope as runs: own, teams the user administers, all for staff."""
    rows = UsageDaily.objects.all()
    if user.is_staff:
        return rows
    admin_teams = TeamMembership.objects.filter(user=user, role=TeamMembership.Role.ADMIN).values("team_id")
    return rows.filter(Q(user=user) | Q(team_id__in=admin_teams))


def report(rows: QuerySet[UsageDaily], group_by: str, since: date | None, until: date | None) -> dict[str, Any]:
    if since is not None:
        rows = rows.filter(day__gte=since)
    if until is not None:
        rows = rows.filter(day__lte=until)
    column = GROUPS[group_by]
    sums = {name: Sum(name) for name in SUMS}
    grouped = rows.values(column).annotate(**sums).order_by("-cost_usd", column)
    results = [_row(group_by, r[column], r) for r in grouped]
    totals = rows.aggregate(**sums)
    return {
        "group_by": group_by,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "results": results,
        "totals": _row(None, None, totals),
    }


def _row(group_by: str | None, key: Any, r: dict[str, Any]) -> dict[str, Any]:
    from ..money import format_usd

    out: dict[str, Any] = {}
    if group_by is not None:
        out[group_by] = key.isoformat() if isinstance(key, date) else key
    for name in SUMS:
        value = r.get(name) or 0
        if name == "cost_usd":
            out["usd"] = format_usd(Decimal(value))
        elif name == "neurons":
            out["neurons"] = float(value)
        else:
            out[name] = int(value)
    return out
