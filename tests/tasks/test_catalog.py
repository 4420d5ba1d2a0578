"""Catalog integrity: every entry is built from Cloudflare's published record."""

from __future__ import annotations

from decimal import Decimal

from jsonschema import Draft7Validator

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
from inference.tasks.validation import record_schema


def test_size_and_uniqueness():
    assert len(MODELS) >= 100
    names = [m.name for m in MODELS]
    assert len(names) == len(set(names))
    assert all(n.startswith(("@cf/", "@hf/")) for n in names)


def test_every_task_is_covered():
    assert all(m.task in TASKS for m in MODELS)
    with_models = {m.task for m in MODELS}
    # No public model exists for the shape-only tasks; every other task has some.
    assert with_models == set(TASKS) - SHAPE_ONLY_TASKS
    assert SHAPE_ONLY_TASKS <= set(TASKS)


def test_prices_are_decimals_and_unknown_is_not_free():
    for model in MODELS:
        for price in model.prices:
            assert isinstance(price.usd, Decimal) and isinstance(price.neurons, Decimal)
            assert price.usd >= 0 and price.neurons >= 0 and price.per >= 1
        assert model.cost_known == (bool(model.prices) or model.price_known)
    # No price published: unknown, not free.
    assert not get_model("@cf/meta/llama-3.1-8b-instruct-fast").cost_known
    # An explicit $0 (per step) is known and free.
    lightning = get_model("@cf/bytedance/stable-diffusion-xl-lightning")
    assert lightning.cost_known and [p.usd for p in lightning.prices] == [Decimal(0)]
    flux = get_model("@cf/black-forest-labs/flux-1-schnell")
    assert [p.usd for p in flux.prices] == [Decimal("0.0000528"), Decimal("0.0001056")]
    # pricing.mdx wins over the record's rounded list, and carries neurons.
    llama = get_model("@cf/meta/llama-3.1-8b-instruct-fp8")
    assert [(p.unit, p.usd, p.neurons, p.per) for p in llama.prices] == [
        ("input_tokens", Decimal("0.152"), Decimal("13778"), 1_000_000),
        ("output_tokens", Decimal("0.287"), Decimal("26128"), 1_000_000),
    ]
    glm = get_model("@cf/zai-org/glm-5.3")
    assert {p.unit: p.usd for p in glm.prices}["cached_input_tokens"] == Decimal("0.260")


def test_streaming_follows_the_record():
    # A model streams when its record's input takes "stream".
    for model in MODELS:
        schema = model.input_schema or {}
        branches = schema.get("oneOf") or schema.get("anyOf") or [schema]
        takes = any("stream" in (b.get("properties") or {}) for b in branches + [schema])
        assert model.streams == takes, model.name
    assert get_model("@cf/meta/llama-3.1-8b-instruct-fp8").streams
    assert not get_model("@cf/baai/bge-base-en-v1.5").streams


def test_retired_models_are_marked_with_date_and_replacement():
    llama = get_model("@cf/meta/llama-3.1-8b-instruct")
    assert llama.retired_on == "2026-05-30" and llama.is_retired()
    assert llama.replacement == "@cf/zai-org/glm-4.7-flash"
    assert get_model("@cf/moonshotai/kimi-k2.5").replacement == "@cf/moonshotai/kimi-k2.6"
    assert llama not in models_for_task("text-generation")
    assert llama in models_for_task("text-generation", include_retired=True)


def test_output_kinds():
    assert get_model("@cf/leonardo/phoenix-1.0").output_kind == OutputKind.JPEG_BYTES
    assert get_model("@cf/leonardo/lucid-origin").output_kind == OutputKind.BASE64_IMAGE
    assert get_model("@cf/lykon/dreamshaper-8-lcm").output_kind == OutputKind.PNG_BYTES
    assert get_model("@cf/myshell-ai/melotts").output_kind == OutputKind.BASE64_AUDIO


def test_rate_limits():
    assert get_model("@cf/baai/bge-large-en-v1.5").rate_limit == 1500
    assert get_model("@cf/baai/bge-small-en-v1.5").rate_limit == 3000
    assert get_model("@cf/meta/llama-3.1-8b-instruct-fp8").rate_limit == 300
    assert rate_limit_for(task="translation") == 720
    assert rate_limit_for("@cf/unknown/model", "text-generation") == 300
    assert rate_limit_for(task="text-to-speech") is None  # not published
    assert all(isinstance(v, int) and v > 0 for v in RATE_LIMITS.values())


def test_media_encodings_and_schemas_are_valid():
    for model in MODELS:
        assert model.audio_input in ("uint8", "base64", "object")
        assert model.image_input in ("", "uint8", "base64", "object")
        if model.input_schema is not None:
            Draft7Validator.check_schema(record_schema(model.input_schema))
        else:
            input_schema(model.task, model=model.name)
    assert get_model("@cf/openai/whisper-large-v3-turbo").audio_input == "base64"
    assert get_model("@cf/deepgram/nova-3").audio_input == "object"
    assert get_model("@cf/moondream/moondream3.1-9B-A2B").image_input == "base64"
