"""Retention and the tables merged after it: ``inference_purge`` deletes a run's
webhook deliveries with it and keeps the daily usage rollup."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from inference.models import Run, UsageDaily, WebhookDelivery
from inference.services import webhooks

LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"


def old_run(user, *, days_old: int, status: str = "succeeded") -> Run:
    run = Run.objects.create(user=user, model=LLAMA, task="text-generation", input={}, status=status,
                             webhook="https://93.184.215.14/hook", webhook_events=["completed"])
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=days_old))
    return run


def deliveries(run: Run, count: int) -> None:
    for attempt in range(1, count + 1):
        WebhookDelivery.objects.create(run=run, event="completed", webhook_id=f"msg_{run.pk.hex[:12]}",
                                       attempt=attempt, url=run.webhook, status_code=500, succeeded=False)


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
def test_purge_deletes_deliveries_with_their_runs_and_keeps_rollups(user, capsys):
    old = [old_run(user, days_old=40) for _ in range(3)]
    recent = old_run(user, days_old=2)
    for run in old:
        deliveries(run, 2)
    deliveries(recent, 1)
    day = timezone.localdate() - timedelta(days=40)
    UsageDaily.objects.create(day=day, user=user, model=LLAMA, task="text-generation",
                              runs=3, succeeded=3, cost_usd=Decimal("0.0123"))

    call_command("inference_purge", "--older-than", "30d", "--batch-size", "2")

    out = capsys.readouterr().out
    assert "Deleted 3 runs" in out and "with 6 webhook deliveries" in out
    assert not Run.objects.filter(pk__in=[r.pk for r in old]).exists()
    assert not WebhookDelivery.objects.filter(run_id__in=[r.pk for r in old]).exists()
    assert list(WebhookDelivery.objects.values_list("run_id", flat=True)) == [recent.pk]
    kept = UsageDaily.objects.get()
    assert (kept.day, kept.runs, kept.cost_usd) == (day, 3, Decimal("0.0123"))


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
def test_a_delivery_claimed_after_its_run_was_purged_is_dropped(user, settings):
    run = old_run(user, days_old=40)
    delivery = WebhookDelivery.objects.create(run=run, event="completed", webhook_id="msg_gone",
                                              attempt=1, url=run.webhook)
    call_command("inference_purge", "--older-than", "30d")
    webhooks.deliver(delivery.pk)  # the queued job runs after the purge: no error, nothing recreated
    assert WebhookDelivery.objects.count() == 0
