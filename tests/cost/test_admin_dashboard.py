"""Admin pages for prices, budgets and usage; the dashboard rendered in headless
Chromium with a screenshot, asserting its charts carry data points."""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from inference.models import Budget, Price, Team, UsageDaily

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
D = Decimal


def seed_usage(user, other_user):
    team = Team.objects.create(slug="research", name="Research")
    today = timezone.localdate()
    models = ["@cf/meta/llama-3.1-8b-instruct-fp8", "@cf/black-forest-labs/flux-1-schnell", "@cf/openai/whisper"]
    for offset in range(10):
        for i, model in enumerate(models):
            UsageDaily.objects.create(
                day=today - timedelta(days=offset), user=user if i != 1 else other_user,
                team=team if i == 2 else None, model=model, task="text-generation",
                runs=10 + offset, succeeded=10 + offset - (offset % 3), failed=offset % 3,
                cost_usd=D("0.01") * (i + 1) + D("0.001") * offset,
            )
    return team


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.org", "pw-root-123")


@pytest.mark.embedded
@pytest.mark.django_db
class TestAdminPages:
    def test_dashboard_renders_charts_with_points(self, client, staff, user, other_user):
        seed_usage(user, other_user)
        client.force_login(staff)
        html = client.get("/admin/inference/usagedaily/dashboard/").content.decode()
        assert html.count('class="bar"') == 30  # 10 days × 3 models
        assert html.count('class="point"') == 10
        assert html.count('class="hbar"') >= 3  # alice, bob + teams
        assert 'data-model="@cf/openai/whisper"' in html

    def test_dashboard_needs_staff(self, client, user):
        client.force_login(user)
        response = client.get("/admin/inference/usagedaily/dashboard/")
        assert response.status_code == 302 and "/login/" in response["Location"]

    def test_budget_list_highlights_reached_and_soft(self, client, staff, user, other_user):
        Budget.objects.create(name="reached", user=user, period="total", limit_usd=D("0.01"))
        Budget.objects.create(name="near", user=other_user, period="total", limit_usd=D("0.3"), soft_threshold=D("0.5"))
        seed_usage(user, other_user)
        client.force_login(staff)
        html = client.get("/admin/inference/budget/").content.decode()
        assert 'class="budget-reached"' in html and 'class="budget-soft"' in html

    def test_editing_a_price_in_force_creates_a_new_version(self, client, staff):
        price = Price.objects.get(model="@cf/openai/whisper", unit="audio_minute")
        client.force_login(staff)
        response = client.post(f"/admin/inference/price/{price.pk}/change/", {
            "model": price.model, "unit": price.unit, "usd_per_unit": "0.0006", "neurons_per_unit": "54.55",
            "per": "1", "effective_from_0": price.effective_from.strftime("%Y-%m-%d"),
            "effective_from_1": price.effective_from.strftime("%H:%M:%S"), "note": "",
        })
        assert response.status_code == 302, response.content[:2000]
        price.refresh_from_db()
        assert price.usd_per_unit == D("0.0005")  # history untouched
        versions = Price.objects.filter(model=price.model, unit=price.unit).order_by("effective_from")
        assert [v.usd_per_unit for v in versions] == [D("0.0005"), D("0.0006")]

    def test_usage_rows_are_read_only(self, client, staff, user, other_user):
        seed_usage(user, other_user)
        client.force_login(staff)
        row = UsageDaily.objects.first()
        assert client.get("/admin/inference/usagedaily/").status_code == 200
        assert client.post(f"/admin/inference/usagedaily/{row.pk}/change/", {"runs": 0}).status_code == 403


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is installed by scripts/test")
@pytest.mark.django_db(transaction=True)
def test_dashboard_screenshot_in_headless_chromium(live_server, client, staff, user, other_user):
    from playwright.sync_api import sync_playwright

    seed_usage(user, other_user)
    client.force_login(staff)
    session = client.cookies["sessionid"].value
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "usage-dashboard.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1100})
            context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
            page = context.new_page()
            page.goto(f"{live_server.url}/admin/inference/usagedaily/dashboard/")
            page.wait_for_selector("#cost-per-day svg")
            bars = page.locator("#cost-per-day svg rect.bar")
            points = page.locator("#failure-rate svg circle.point")
            assert bars.count() == 30
            assert points.count() == 10
            # Drawn, not just present: the bars have a real on-screen size.
            box = bars.first.bounding_box()
            assert box is not None and box["height"] > 0 and box["width"] > 0
            assert page.locator("#top-users rect.hbar").count() == 2
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


@pytest.mark.embedded
@pytest.mark.django_db
def test_run_changelist_fast_paths_still_filter_and_drill_down(client, staff, user):
    from inference.models import Run

    now = timezone.now()
    for i, task in enumerate(["text-generation", "text-to-image", "text-generation"]):
        Run.objects.create(user=user, model="m", task=task, input={}, status="succeeded",
                           created_at=now - timedelta(days=40 * i))
    client.force_login(staff)
    html = client.get("/admin/inference/run/").content.decode()
    assert html.count('name="_selected_action"') == 3
    filtered = client.get("/admin/inference/run/", {"task": "text-to-image"}).content.decode()
    assert filtered.count('name="_selected_action"') == 1
    year = client.get("/admin/inference/run/", {"created_at__year": now.year}).content.decode()
    # drill-down offers the months between the first and last run of that year
    assert f"created_at__month={now.month}" in year
    assert now.strftime("%B %Y") in year
