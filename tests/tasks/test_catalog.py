"""Catalog integrity."""

from __future__ import annotations

from decimal import Decimal

from jsonschema import Draft202012Validator

from inference.catalog import (
    MODELS,
    RATE_LIMITS,
    SHAPE_ONLY_TASKS,
    TASKS,
    OutputKind,
    get_model,
    models_for_task,
    rate_limit_for,
)
from inference.tasks import input_schema


def test_size_and_uniqueness():
    assert len(MODELS) >= 40
    names = [m.name for m in MODELS]
    assert len(names) == len(set(names))
    assert all(n.startswith(("@cf/", "@hf/")) for n in names)


def test_every_task_is_covered():
    assert all(m.task in TASKS for m in MODELS)
    with_models = {m.task for m in MODELS}
    # No public model exists for the shape-only tasks; every other task has some.
    assert with_models == set(TASKS) - SHAPE_ONLY_TASKS
    assert SHAPE_ONLY_TASKS <= set(TASKS)


def test_prices_are_decimals_and_unknown_is_empty():
    for model in MODELS:
        for price in model.prices:
            assert isinstance(price.usd, Decimal) and isinstance(price.neurons, Decimal)
            assert price.usd > 0 and price.neurons > 0 and price.per >= 1
        assert model.cost_known == bool(model.prices)
    assert not get_model("@cf/facebook/bart-large-cnn").cost_known
    flux = get_model("@cf/black-forest-labs/flux-1-schnell")
    assert [p.usd for p in flux.prices] == [Decimal("0.0000528"), Decimal("0.0001056")]
    llama = get_model("@cf/meta/llama-3.1-8b-instruct")
    assert [(p.usd, p.neurons, p.per) for p in llama.prices] == [
        (Decimal("0.282"), Decimal("25608"), 1_000_000),
        (Decimal("0.827"), Decimal("75147"), 1_000_000),
    ]


def test_text_generation_models_stream():
    for model in models_for_task("text-generation"):
        assert model.streams and model.output_kind == OutputKind.JSON
    assert not any(m.streams for m in MODELS if m.task != "text-generation")


def test_output_kinds():
    assert get_model("@cf/leonardo/phoenix-1.0").output_kind == OutputKind.JPEG_BYTES
    assert get_model("@cf/leonardo/lucid-origin").output_kind == OutputKind.BASE64_IMAGE
    assert get_model("@cf/lykon/dreamshaper-8-lcm").output_kind == OutputKind.PNG_BYTES
    assert get_model("@cf/myshell-ai/melotts").output_kind == OutputKind.BASE64_AUDIO


def test_rate_limits():
    assert get_model("@cf/baai/bge-large-en-v1.5").rate_limit == 1500
    assert get_model("@cf/baai/bge-small-en-v1.5").rate_limit == 3000
    assert get_model("@cf/meta/llama-3.1-8b-instruct").rate_limit == 300
    assert rate_limit_for(task="translation") == 720
    assert rate_limit_for("@cf/unknown/model", "text-generation") == 300
    assert rate_limit_for(task="text-to-speech") is None  # not published
    assert all(isinstance(v, int) and v > 0 for v in RATE_LIMITS.values())


def test_audio_input_and_input_limits_are_consistent():
    for model in MODELS:
        assert model.audio_input in ("uint8", "base64")
        assert model.image_input in ("", "uint8", "base64")
        Draft202012Validator.check_schema(input_schema(model.task, model=model.name))
    assert get_model("@cf/openai/whisper-large-v3-turbo").audio_input == "base64"
