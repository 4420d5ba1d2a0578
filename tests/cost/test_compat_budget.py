"""Budgets on the Cloudflare-compatible endpoint: a caller over budget gets
Cloudflare's error envelope with HTTP 402, and nothing is stored or sent upstream."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from inference.models import Budget, Run, Team, UsageDaily
from tests.conftest import ACCOUNT_ID, make_client

LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"
URL = f"/client/v4/accounts/{ACCOUNT_ID}/ai/run/{LLAMA}"
PAYLOAD = {"prompt": "hi", "max_tokens": 100}

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def spend(user, usd: str, team=None) -> None:
    UsageDaily.objects.create(day=timezone.localdate(), user=user, team=team, model=LLAMA,
                              task="text-generation", runs=1, succeeded=1, cost_usd=Decimal(usd))


def assert_budget_envelope(response, budget_name: str) -> None:
    assert response.status_code == 402, response.content
    body = response.json()
    assert set(body) == {"result", "success", "errors", "messages"}
    assert body["result"] is None and body["success"] is False and body["messages"] == []
    [err] = body["errors"]
    assert err["code"] == 9402
    assert err["message"].startswith(f"Budget {budget_name!r} would be reached: limit $")


def test_over_budget_user_gets_402_envelope_and_upstream_nothing(api, user, emulator):
    Budget.objects.create(name="alice-monthly", user=user, period="month", limit_usd=Decimal("0.01"))
    spend(user, "0.00998")
    response = api.post(URL, PAYLOAD, format="json")
    assert_budget_envelope(response, "alice-monthly")
    assert "X-CFAI-Run-Id" not in response
    assert Run.objects.count() == 0
    assert emulator.requests == []


def test_team_budget_applies_to_a_team_key(user, emulator):
    team = Team.objects.create(slug="compat-team", name="Compat team")
    Budget.objects.create(name="team-cap", team=team, period="total", limit_usd=Decimal("0.001"))
    spend(user, "0.001", team=team)
    response = make_client(user, team=team).post(URL, PAYLOAD, format="json")
    assert_budget_envelope(response, "team-cap")
    assert Run.objects.count() == 0 and emulator.requests == []


def test_under_budget_the_call_goes_through(api, user, emulator):
    # The same setup one step below the limit: answered by the emulator, so the
    # refusal above is the budget's doing, not the request's.
    Budget.objects.create(name="alice-monthly", user=user, period="month", limit_usd=Decimal("1"))
    response = api.post(URL, PAYLOAD, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["success"] is True
    assert len(emulator.requests) == 1 and Run.objects.get().status == "succeeded"
