"""The submission hot path after profiling: prices from a per-process cache that
a Price change clears, and both throttle scopes in two cache round trips."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from inference.models import Price, Run
from inference.services import pricing

LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"
UNPRICED = "@cf/test/perf-unpriced-model"


def _price(model: str, usd: str, *, effective_from=None, unit: str = "input_tokens") -> Price:
    return Price.objects.create(
        model=model, unit=unit, usd_per_unit=Decimal(usd), neurons_per_unit=Decimal(1), per=1,
        effective_from=effective_from or timezone.now() - timedelta(seconds=1),
    )


@pytest.mark.embedded
@pytest.mark.django_db
class TestPriceCache:
    def test_second_lookup_needs_no_query(self, django_assert_num_queries):
        _price(UNPRICED, "1")
        pricing.cached_prices_for(UNPRICED)
        with django_assert_num_queries(0):
            prices = pricing.cached_prices_for(UNPRICED)
        assert prices["input_tokens"].usd_per_unit == Decimal(1)

    def test_a_saved_price_applies_at_once(self):
        assert pricing.cached_prices_for(UNPRICED) == {}  # cached: no price
        price = _price(UNPRICED, "2")
        assert pricing.cached_prices_for(UNPRICED)["input_tokens"].pk == price.pk
        price.usd_per_unit = Decimal(3)
        price.save()
        assert pricing.cached_prices_for(UNPRICED)["input_tokens"].usd_per_unit == Decimal(3)
        price.delete()
        assert pricing.cached_prices_for(UNPRICED) == {}

    def test_versions_are_chosen_by_effective_from_per_call(self):
        now = timezone.now()
        old = _price(UNPRICED, "1", effective_from=now - timedelta(days=2))
        new = _price(UNPRICED, "5", effective_from=now - timedelta(days=1))
        later = _price(UNPRICED, "9", effective_from=now + timedelta(hours=1))
        assert pricing.cached_prices_for(UNPRICED)["input_tokens"].pk == new.pk
        # Same cache entry, other instants: the version in force at each.
        assert pricing.cached_prices_for(UNPRICED, now - timedelta(days=1, hours=12))["input_tokens"].pk == old.pk
        assert pricing.cached_prices_for(UNPRICED, now + timedelta(hours=2))["input_tokens"].pk == later.pk
        assert pricing.cached_prices_for(UNPRICED, now - timedelta(days=3)) == {}

    def test_cache_off_reads_every_time(self, settings, django_assert_num_queries):
        settings.INFERENCE = {**settings.INFERENCE, "PRICE_CACHE_SECONDS": 0}
        pricing.cached_prices_for(LLAMA)
        with django_assert_num_queries(1):
            pricing.cached_prices_for(LLAMA)

    def test_estimate_follows_a_new_price(self):
        payload = {"prompt": "x" * 400, "max_tokens": 0}
        _price(UNPRICED, "0.001")
        first = pricing.estimate_submission(UNPRICED, "text-generation", payload)
        _price(UNPRICED, "0.002", effective_from=timezone.now() - timedelta(milliseconds=10))
        second = pricing.estimate_submission(UNPRICED, "text-generation", payload)
        assert first == Decimal("0.1") and second == Decimal("0.2")


@pytest.mark.embedded
@pytest.mark.django_db
class TestThrottleRoundTrips:
    @pytest.fixture(autouse=True)
    def low_rates(self, settings, api):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"inference_key": "5/min", "inference_submit": "2/min"},
        }
        for scope in ("inference_key", "inference_submit"):
            cache.delete(f"throttle:{scope}:key:{api.key.pk}")

    def test_a_submission_reads_once_and_writes_once(self, api, monkeypatch):
        calls: list[str] = []
        for name in ("get", "set", "get_many", "set_many"):
            original = getattr(cache, name)

            def spy(*args, _name=name, _original=original, **kwargs):
                calls.append(_name)
                return _original(*args, **kwargs)

            monkeypatch.setattr(cache, name, spy)
        response = api.post("/api/runs/", {"model": LLAMA, "input": "not an object"}, format="json")
        assert response.status_code == 400
        assert calls == ["get_many", "set_many"]

    def test_refused_submission_still_counts_for_the_key(self, api):
        bad = {"model": LLAMA, "input": "not an object"}
        assert api.post("/api/runs/", bad, format="json").status_code == 400
        assert api.post("/api/runs/", bad, format="json").status_code == 400
        refused = api.post("/api/runs/", bad, format="json")
        assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 60
        # As with DRF's throttles one after the other: the key scope took all three.
        assert len(cache.get(f"throttle:inference_key:key:{api.key.pk}")) == 3
        assert len(cache.get(f"throttle:inference_submit:key:{api.key.pk}")) == 2
        assert api.get("/api/runs/").status_code == 200
        assert api.get("/api/runs/").status_code == 200
        assert api.get("/api/runs/").status_code == 429
        assert Run.objects.count() == 0


@pytest.mark.skipif(not __import__("inference.services.live", fromlist=["enabled"]).enabled(), reason="needs Redis")
def test_final_events_published_together_in_order():
    import uuid

    from inference.services import live

    run_id = uuid.uuid4()
    conn = live.get_redis()
    # A Redis that has never seen the script: the pipeline's NOSCRIPT falls back in order.
    conn.script_flush()
    live.publish_all(run_id, [("status", {"status": "running"})])
    live.publish_all(run_id, [("status", {"status": "succeeded"}), ("done", {"status": "succeeded"})])
    live.publish(run_id, "output", {"delta": "x"})
    events = live.read_backlog(run_id)
    assert [(e.seq, e.event, e.data) for e in events] == [
        (1, "status", {"status": "running"}),
        (2, "status", {"status": "succeeded"}),
        (3, "done", {"status": "succeeded"}),
        (4, "output", {"delta": "x"}),
    ]
