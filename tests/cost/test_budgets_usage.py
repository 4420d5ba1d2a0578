"""Budgets (reserve at submission, reconcile at completion, one `>=` rule) and
the daily rollup behind /api/usage/."""

from __future__ import annotations

import threading
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from inference.exceptions import SubmissionError
from inference.models import Budget, Run, RunStatus, Team, TeamMembership, UsageDaily
from inference.services import budgets, pricing
from inference.services import recovery as reliability
from inference.services.execution import execute_run
from inference.services.lifecycle import cancel_run
from inference.services.submission import Submission, submit_run
from tests.conftest import make_client, uses_postgres

D = Decimal
LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"
PAYLOAD = {"prompt": "hi", "max_tokens": 100}
# "hi" ≈ 1 token in + 100 tokens out at most: 0.152/1e6 + 100 × 0.287/1e6 (pricing.mdx)
ESTIMATE = D("0.000028852")


def submit(user, payload=PAYLOAD, model=LLAMA, api_key=None):
    run, _ = submit_run(user, Submission(model=model, input=dict(payload)), api_key=api_key, enqueue=False)
    return run


def execute(run):
    execute_run(run.pk)
    return Run.objects.get(pk=run.pk)


def spend(user, usd: str, team=None, model=LLAMA):
    UsageDaily.objects.create(day=timezone.localdate(), user=user, team=team, model=model,
                              task="text-generation", runs=1, succeeded=1, cost_usd=D(usd))


@pytest.mark.embedded
@pytest.mark.django_db
class TestBudgets:
    def test_estimate_is_the_worst_case(self):
        assert pricing.estimate_submission(LLAMA, "text-generation", PAYLOAD) == ESTIMATE

    def test_refused_with_402_naming_the_budget_nothing_stored(self, api, user, emulator):
        Budget.objects.create(name="alice-monthly", user=user, period="month", limit_usd=D("0.01"))
        spend(user, "0.00998")
        response = api.post("/api/runs/", {"model": LLAMA, "input": PAYLOAD}, format="json")
        assert response.status_code == 402
        body = response.json()
        assert body["budget"] == "alice-monthly"
        assert body["limit"] == "0.01" and body["spent"] == "0.00998"
        assert "alice-monthly" in body["detail"]
        assert Run.objects.count() == 0
        assert len(emulator.requests) == 0

    def test_reaching_the_limit_exactly_is_refused(self, user):
        Budget.objects.create(name="b", user=user, period="day", limit_usd=D("0.001"))
        spend(user, str(D("0.001") - ESTIMATE))  # spent + estimate == limit: reaches it
        with pytest.raises(SubmissionError) as exc:
            submit(user)
        assert exc.value.status == 402
        UsageDaily.objects.update(cost_usd=D("0.001") - ESTIMATE - D("0.0000000001"))
        assert submit(user).reserved_usd == ESTIMATE  # one ten-billionth below: accepted

    def test_team_budget_applies_to_runs_with_a_team_key(self, user):
        team = Team.objects.create(slug="research", name="Research")
        Budget.objects.create(name="team-total", team=team, period="total", limit_usd=D("0.00005"))
        client = make_client(user, team=team)
        assert submit(user).reserved_usd == ESTIMATE  # personal key: no team budget
        assert submit(user, api_key=client.key).team == team  # 0.0000289 of 0.00005
        with pytest.raises(SubmissionError) as exc:
            submit(user, api_key=client.key)  # 2 × 0.0000289 would pass the limit
        assert exc.value.status == 402
        assert exc.value.errors["budget"] == "team-total"

    def test_reconcile_replaces_the_reservation_with_the_cost(self, user, emulator):
        budget = Budget.objects.create(name="b", user=user, period="month", limit_usd=D("1"))
        run = submit(user)
        assert budgets.spent(budget) == ESTIMATE
        run = execute(run)
        assert run.status == RunStatus.SUCCEEDED and run.reserved_usd == 0
        assert budgets.spent(budget) == run.cost_usd < ESTIMATE
        row = UsageDaily.objects.get(user=user, model=LLAMA)
        assert row.cost_usd == run.cost_usd and row.runs == 1 and row.succeeded == 1

    def test_canceled_run_releases_its_reservation(self, user):
        budget = Budget.objects.create(name="b", user=user, period="month", limit_usd=D("1"))
        run = submit(user)
        cancel_run(run)
        assert budgets.spent(budget) == 0

    def test_status_highlights_soft_threshold_and_limit(self, user, emulator):
        budget = Budget.objects.create(name="soft", user=user, period="month", limit_usd=D("0.01"), soft_threshold=D("0.5"))
        assert budgets.status(budget) == (D(0), "ok")
        spend(user, "0.005")  # exactly the soft line: reaching counts
        assert budgets.status(budget)[1] == "soft"
        UsageDaily.objects.update(cost_usd=D("0.01"))
        assert budgets.status(budget)[1] == "reached"


@pytest.mark.django_db
def test_soft_signal_fires_after_commit(user, emulator, django_capture_on_commit_callbacks):
    Budget.objects.create(name="soft", user=user, period="month", limit_usd=D("0.01"), soft_threshold=D("0.001"))
    seen = []

    def receiver(sender, budget, spent, limit, level, **kw):
        seen.append((budget.name, level, spent))

    budgets.budget_threshold_reached.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            execute(submit(user))
        with django_capture_on_commit_callbacks(execute=True):
            execute(submit(user))
    finally:
        budgets.budget_threshold_reached.disconnect(receiver)
    assert [(name, level) for name, level, _ in seen] == [("soft", "soft")]
    assert seen[0][2] >= D("0.00001")


@pytest.mark.skipif(not uses_postgres(), reason="row locks need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_submissions_never_overspend(user):
    """50 threads, each with its own connection, against a nearly spent budget."""
    spent_before = D("0.5")
    limit = spent_before + ESTIMATE * D("5.5")  # room for 5 runs, not 6
    budget = Budget.objects.create(name="tight", user=user, period="month", limit_usd=limit)
    spend(user, str(spent_before))
    barrier = threading.Barrier(50)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker():
        try:
            barrier.wait()
            submit(user)
            result = "accepted"
        except SubmissionError as exc:
            result = f"refused {exc.status}"
        except Exception as exc:  # noqa: BLE001 - reported in the assertion
            result = f"error {exc!r}"
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 50
    assert outcomes.count("accepted") == 5, outcomes
    assert outcomes.count("refused 402") == 45
    total = budgets.spent(budget)
    assert total < limit
    assert total <= limit + ESTIMATE  # the bound, with room to spare
    assert Run.objects.count() == 5


@pytest.mark.embedded
@pytest.mark.django_db
class TestUsage:
    def _runs(self, user, other_user, emulator):
        team = Team.objects.create(slug="research", name="Research")
        TeamMembership.objects.create(team=team, user=other_user, role="admin")
        team_key = make_client(user, team=team).key
        execute(submit(user, {"prompt": "one two three", "max_tokens": 20}))
        execute(submit(user, {"prompt": "four", "max_tokens": 30}, api_key=team_key))
        execute(submit(user, {"text": "a" * 400}, model="@cf/baai/bge-small-en-v1.5"))
        execute(submit(user, {"prompt": "long " * 20}, model="@cf/meta/llama-3.1-8b-instruct-fast"))
        emulator.add_fault("429_3036", count=1)
        failed = execute(submit(user, {"prompt": "quota", "max_tokens": 20}))
        assert failed.status == RunStatus.FAILED
        reliability.clear_pause()  # the 3036 paused the account until midnight UTC
        execute(submit(other_user, {"prompt": "bob", "max_tokens": 20}))
        return team

    def test_rollup_totals_equal_the_sum_over_runs(self, api, user, other_user, emulator):
        self._runs(user, other_user, emulator)
        expected = defaultdict(lambda: {"runs": 0, "usd": D(0), "failed": 0, "unknown": 0})
        for run in Run.objects.filter(user=user):
            row = expected[run.model]
            row["runs"] += 1
            row["usd"] += run.cost_usd or 0
            row["failed"] += run.status == RunStatus.FAILED
            row["unknown"] += run.cost_usd is None and run.status == RunStatus.SUCCEEDED
        body = api.get("/api/usage/", {"group_by": "model"}).json()
        got = {r["model"]: r for r in body["results"]}
        assert set(got) == set(expected)
        for model, row in expected.items():
            assert got[model]["runs"] == row["runs"]
            assert D(got[model]["usd"]) == row["usd"]
            assert got[model]["failed"] == row["failed"]
            assert got[model]["unknown_cost_runs"] == row["unknown"]
        assert got["@cf/meta/llama-3.1-8b-instruct-fast"]["unknown_cost_runs"] == 1
        assert D(body["totals"]["usd"]) == sum(r["usd"] for r in expected.values())
        assert body["totals"]["runs"] == 5

    def test_scopes_groups_and_dates(self, api, other_api, user, other_user, emulator):
        self._runs(user, other_user, emulator)
        # bob administers the team: his own run plus alice's team run
        bob = other_api.get("/api/usage/", {"group_by": "user"}).json()
        assert {r["user"]: r["runs"] for r in bob["results"]} == {"alice": 1, "bob": 1}
        teams = api.get("/api/usage/", {"group_by": "team"}).json()
        assert {r["team"]: r["runs"] for r in teams["results"]} == {None: 4, "research": 1}
        today = timezone.localdate().isoformat()
        days = api.get("/api/usage/", {"group_by": "day", "since": today, "until": today}).json()
        assert [r["day"] for r in days["results"]] == [today]
        assert api.get("/api/usage/", {"since": "2000-01-01", "until": "2000-01-02"}).json()["results"] == []

    @pytest.mark.parametrize("params,field", [
        ({"group_by": "colour"}, "group_by"), ({"since": "yesterday"}, "since"),
        ({"since": "2025-02-01", "until": "2025-01-01"}, "until"),
    ])
    def test_bad_parameters_are_400_naming_the_field(self, api, params, field):
        response = api.get("/api/usage/", params)
        assert response.status_code == 400 and field in response.json()

    def test_needs_authentication(self, client):
        assert client.get("/api/usage/").status_code in (401, 403)
