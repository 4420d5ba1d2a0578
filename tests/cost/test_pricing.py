"""Cost per unit type against figures computed by hand from the price table
(cloudflare-facts.md), and through the real pipeline against the emulator."""

from __future__ import annotations

import base64
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from inference import catalog
from inference.emulator.outputs import mp3_bytes
from inference.models import Price, Run, RunStatus
from inference.services import pricing
from inference.services.execution import execute_run
from inference.services.submission import Submission, submit_run

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

D = Decimal


def run_of(model: str, task: str, payload: dict, **kw) -> Run:
    return Run(model=model, task=task, input=payload, created_at=timezone.now(), **kw)


class TestHandComputed:
    def test_tokens_llama(self):
        run = run_of("@cf/meta/llama-3.1-8b-instruct-fp8", "text-generation", {"prompt": "x"})
        cost = pricing.cost_of(run, usage={"prompt_tokens": 1000, "completion_tokens": 500}, result={})
        # 1000 × 0.152/1e6 + 500 × 0.287/1e6 ; 1000 × 13778/1e6 + 500 × 26128/1e6
        assert cost.usd == D("0.0002955")
        assert cost.neurons == D("26.842")
        assert cost.estimated is False
        assert len(cost.price_ids) == 2

    def test_tiles_and_steps_flux(self):
        run = run_of("@cf/black-forest-labs/flux-1-schnell", "text-to-image",
                     {"prompt": "a", "width": 1024, "height": 768, "steps": 4})
        cost = pricing.cost_of(run, usage=None, result={})
        # 2×2 tiles × 0.0000528 + 4 steps × 0.0001056 ; 4 × 4.80 + 4 × 9.60
        assert cost.usd == D("0.0006336")
        assert cost.neurons == D("57.6")
        assert cost.estimated is False

    def test_tiles_round_up_phoenix(self):
        run = run_of("@cf/leonardo/phoenix-1.0", "text-to-image",
                     {"prompt": "a", "width": 600, "height": 512, "num_steps": 10})
        cost = pricing.cost_of(run, usage=None, result={})
        # 600 px needs two tiles across: 2 × 0.005830 + 10 × 0.000110
        assert cost.usd == D("0.01276")
        assert cost.neurons == D("1160")

    def test_tts_audio_minutes_from_the_generated_file(self):
        run = run_of("@cf/myshell-ai/melotts", "text-to-speech", {"prompt": "hello"})
        audio = mp3_bytes(90)  # 2,500 frames of 36 ms: mutagen reads the length from the file
        cost = pricing.cost_of(run, usage=None, result={}, outputs=[("audio", audio, "audio/mpeg")])
        # 1.5 min × 0.0002 ; 1.5 × 18.63
        assert cost.usd == D("0.0003")
        assert cost.neurons == D("27.945")
        assert cost.estimated is False

    def test_aura_per_thousand_characters(self):
        run = run_of("@cf/deepgram/aura-1", "text-to-speech", {"text": "a" * 2500})
        cost = pricing.cost_of(run, usage=None, result={}, outputs=[("audio", mp3_bytes(60), "audio/mpeg")])
        # 2.5 k chars × 0.015 ; 2.5 × 1363.64
        assert cost.usd == D("0.0375")
        assert cost.neurons == D("3409.1")

    def test_resnet_per_image(self):
        run = run_of("@cf/microsoft/resnet-50", "image-classification", {})
        cost = pricing.cost_of(run, usage=None, result=[])
        assert cost.usd == D("0.00000251")
        assert cost.neurons == D("0.228055")

    def test_embeddings_without_usage_are_estimated(self):
        run = run_of("@cf/baai/bge-small-en-v1.5", "text-embeddings", {"text": "a" * 400})
        cost = pricing.cost_of(run, usage=None, result={"shape": [1, 384]})
        # 400 chars ≈ 100 tokens × 0.020 / 1e6
        assert cost.usd == D("0.000002")
        assert cost.estimated is True
        assert "counted locally" in cost.reason

    def test_upstream_neurons_win(self):
        run = run_of("@cf/meta/llama-3.1-8b-instruct-fp8", "text-generation", {"prompt": "x"})
        cost = pricing.cost_of(run, usage={"prompt_tokens": 1000, "completion_tokens": 500, "neurons": 1000}, result={})
        assert cost.usd == D("0.011")  # 1,000 neurons at $0.011 per 1,000
        assert cost.neurons == D("1000")
        assert cost.estimated is False

    def test_unknown_price_is_null_not_zero(self):
        run = run_of("@cf/meta/llama-3.1-8b-instruct-fast", "text-generation", {"prompt": "abc"})
        cost = pricing.cost_of(run, usage=None, result={"response": "a"})
        assert cost.usd is None and cost.neurons is None
        assert "No price" in cost.reason

    def test_newer_price_version_applies_to_later_runs_only(self):
        model = "@cf/meta/llama-3.1-8b-instruct-fp8"
        old = Price.objects.get(model=model, unit="input_tokens")
        new = Price.objects.create(model=model, unit="input_tokens", usd_per_unit=D("1"), neurons_per_unit=D("100000"),
                                   per=1_000_000, effective_from=timezone.now() - timedelta(seconds=1))
        before = run_of(model, "text-generation", {"prompt": "x"})
        before.created_at = timezone.now() - timedelta(days=1)
        after = run_of(model, "text-generation", {"prompt": "x"})
        usage = {"prompt_tokens": 1_000_000, "completion_tokens": 0}
        assert pricing.cost_of(before, usage=usage, result={}).price_ids == [old.pk]
        cost = pricing.cost_of(after, usage=usage, result={})
        assert cost.price_ids == [new.pk] and cost.usd == D("1")

    def test_seed_is_idempotent_and_covers_the_catalog(self):
        count = Price.objects.count()
        assert pricing.seed_prices() == 0
        assert Price.objects.count() == count
        assert Price.objects.filter(model="@cf/openai/whisper", unit="audio_minute").exists()
        # every model of the snapshot with a published price (current and retired)
        priced = {m.name for m in catalog.MODELS if m.prices}
        assert set(Price.objects.order_by().values_list("model", flat=True).distinct()) == priced
        assert len(priced) >= 60


def submit_and_execute(user, model, payload, uploads=None):
    run, _ = submit_run(
        user, Submission(model=model, input=payload, uploads=uploads or {}), enqueue=False
    )
    execute_run(run.pk)
    return Run.objects.get(pk=run.pk)


class TestThroughThePipeline:
    """Real upstream calls (the emulator over HTTP), executed in-process."""

    def test_streamed_run_costs_exactly_the_unstreamed_run(self, user, emulator):
        model = "@cf/meta/llama-3.1-8b-instruct-fp8"
        messages = [{"role": "user", "content": "Tell me about tiles and neurons"}]
        plain = submit_and_execute(user, model, {"messages": messages, "max_tokens": 40})
        streamed = submit_and_execute(user, model, {"messages": messages, "max_tokens": 40, "stream": True})
        assert plain.status == streamed.status == RunStatus.SUCCEEDED
        assert streamed.stream is True
        assert plain.cost_usd is not None and plain.cost_usd > 0
        assert (streamed.cost_usd, streamed.cost_neurons, streamed.cost_estimated) == (
            plain.cost_usd, plain.cost_neurons, plain.cost_estimated)
        u = plain.usage
        expected = (D(u["prompt_tokens"]) * D("0.152") + D(u["completion_tokens"]) * D("0.287")) / D(1_000_000)
        assert plain.cost_usd == expected.quantize(D("1e-10"))
        assert sorted(streamed.cost_prices) == sorted(plain.cost_prices) and len(plain.cost_prices) == 2

    def test_asr_bills_the_input_audio_length(self, user, emulator):
        audio = mp3_bytes(90)
        run = submit_and_execute(user, "@cf/openai/whisper-large-v3-turbo",
                                 {"audio": base64.b64encode(audio).decode()})
        assert run.status == RunStatus.SUCCEEDED, run.error_message
        # 1.5 min × 0.0005 ; 1.5 × 46.63
        assert run.cost_usd == D("0.00075")
        assert run.cost_neurons == D("69.945")

    def test_api_shows_cost_and_null_for_unknown(self, api, user, emulator):
        run = submit_and_execute(user, "@cf/black-forest-labs/flux-1-schnell",
                                 {"prompt": "a lighthouse", "steps": 2})
        body = api.get(f"/api/runs/{run.pk}/").json()
        assert run.status == RunStatus.SUCCEEDED
        # the emulator's image is 256×256: one tile + 2 steps
        assert body["cost"] == {"usd": "0.000264", "neurons": 24.0, "estimated": False}
        unknown = submit_and_execute(user, "@cf/meta/llama-3.1-8b-instruct-fast", {"prompt": "a long text " * 5})
        assert unknown.status == RunStatus.SUCCEEDED
        assert api.get(f"/api/runs/{unknown.pk}/").json()["cost"] is None
        assert "No price" in unknown.cost_reason

    def test_cut_stream_bills_the_partial_output(self, user, emulator):
        emulator.add_fault("cut_stream", count=10)
        run = submit_and_execute(user, "@cf/meta/llama-3.1-8b-instruct-fp8",
                                 {"prompt": "hello there", "stream": True, "max_tokens": 30})
        assert run.status == RunStatus.FAILED
        assert run.cost_usd is not None and run.cost_usd > 0
        assert run.cost_estimated is True
