"""A run canceled while upstream works on it: the result is discarded, but the
call was billed upstream, so its usage is priced, kept on the run and counted
in the daily rollup — once."""

from __future__ import annotations

import time

import pytest

from inference.models import Run, RunStatus, UsageDaily
from inference.services import pricing
from inference.services.lifecycle import bill_canceled, cancel_run

from .test_faults import LLAMA, submit, wait_until


def rollup_for(run: Run) -> UsageDaily:
    return UsageDaily.objects.get(user=run.user, model=run.model, task=run.task)


def assert_billed(run: Run) -> None:
    assert run.status == "canceled" and run.result is None
    assert run.usage and run.usage["completion_tokens"] >= 1
    assert run.cost_usd is not None and run.cost_usd > 0
    assert run.cost_reason.startswith("Canceled mid-call")
    assert run.reserved_usd == 0
    row = rollup_for(run)
    assert (row.runs, row.succeeded, row.failed) == (1, 0, 0)
    assert row.cost_usd == run.cost_usd
    assert row.output_tokens == run.usage["completion_tokens"]


@pytest.mark.worker
def test_canceled_mid_call_is_priced_and_rolled_up(api, rel_worker, emulator):
    emulator.add_fault("slow", delay_ms=1500)
    run_id = submit(api, LLAMA, {"prompt": "cancel me, bill me"})
    wait_until(lambda: Run.objects.get(pk=run_id).status == "running", message="running")
    assert api.post(f"/api/runs/{run_id}/cancel/").status_code == 200
    run = wait_until(lambda: (r := Run.objects.get(pk=run_id)).cost_usd is not None and r,
                     timeout=20, message="cost recorded")
    assert_billed(run)


@pytest.mark.worker
def test_canceled_mid_stream_is_priced_and_rolled_up(api, rel_worker, emulator):
    emulator.configure(token_delay_ms=150)
    run_id = submit(api, LLAMA, {"prompt": "a long story to cancel", "stream": True, "max_tokens": 256})
    wait_until(lambda: Run.objects.get(pk=run_id).status == "running", message="running")
    time.sleep(1.0)  # some tokens streamed (and billed upstream)
    assert api.post(f"/api/runs/{run_id}/cancel/").status_code == 200
    run = wait_until(lambda: (r := Run.objects.get(pk=run_id)).cost_usd is not None and r,
                     timeout=20, message="cost recorded")
    assert_billed(run)
    assert run.usage.get("partial") is True
    assert run.upstream_ms < 10000  # the stream was closed, not read to its end


@pytest.mark.embedded
@pytest.mark.django_db
def test_billed_once_whoever_finishes(user):
    run = Run.objects.create(user=user, model=LLAMA, task="text-generation", input={"prompt": "hi"},
                             status=RunStatus.CANCELED, attempts=1)
    usage = {"prompt_tokens": 10, "completion_tokens": 20}
    cost = pricing.safe_cost_of(run, usage=usage, result={"response": "x", "usage": usage})
    assert cost.usd is not None and cost.usd > 0
    assert bill_canceled(run, 1, usage=usage, cost=cost, upstream_ms=5) is True
    assert bill_canceled(run, 1, usage=usage, cost=cost, upstream_ms=5) is False  # a second finisher
    run.refresh_from_db()
    row = rollup_for(run)
    assert row.runs == 1 and row.cost_usd == cost.usd == run.cost_usd
    assert (row.input_tokens, row.output_tokens) == (10, 20)
    # A run canceled while queued never reached upstream: no cost, no rollup.
    queued = Run.objects.create(user=user, model=LLAMA, task="text-generation", input={"prompt": "hi"})
    cancel_run(queued)
    queued.refresh_from_db()
    assert queued.cost_usd is None and UsageDaily.objects.get().runs == 1
