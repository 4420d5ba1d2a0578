"""Cost of a run from what was measured: the one place prices are applied.

Rules (cloudflare-facts.md "Pricing"):
* Quantities come from measurement: tokens from the upstream ``usage`` (the last
  SSE event for streams, so a streamed run costs what the same run unstreamed
  does), tiles and steps from the image request, audio minutes from the audio
  file itself (input for ASR, generated for TTS) read with mutagen, characters
  from the text, one image per image classification.
* Neurons reported by the upstream win; neurons convert to USD at $0.011 / 1,000.
* No price known: the cost is ``None`` with a reason, never $0.
* Anything counted locally (tokens when the upstream reported none, audio whose
  length mutagen cannot read) makes the cost ``estimated``.
* Money is Decimal throughout.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.utils import timezone

from ..catalog import MODELS, Task, Unit
from ..money import USD_QUANTUM

logger = logging.getLogger(__name__)

USD_PER_NEURON = Decimal("0.011") / Decimal(1000)
NEURON_QUANTUM = Decimal("1e-6")
TILE_SIDE = 512
# Real text-to-image models default to 1024×1024 when the request names no size.
DEFAULT_IMAGE_SIDE = 1024
# Default diffusion steps when the request names none (flux: 4; others: 20).
DEFAULT_STEPS = {"@cf/black-forest-labs/flux-1-schnell": 4}
DEFAULT_STEPS_OTHER = 20
# Text generation defaults to 256 new tokens (cloudflare-facts.md).
DEFAULT_MAX_TOKENS = 256
# Local token estimate: about four characters per token for English text.
CHARS_PER_TOKEN = 4
# Fallback audio bitrate (bytes per second) when mutagen cannot read a file.
FALLBACK_AUDIO_BYTES_PER_SECOND = 16000


def _seed_effective_from() -> datetime:
    # Seed prices take effect from this instant so that older runs are priced too.
    return datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class Cost:
    usd: Decimal | None
    neurons: Decimal | None
    estimated: bool = False
    reason: str = ""
    price_ids: list[int] = field(default_factory=list)
    quantities: dict[str, Decimal] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    # False for a run that failed before the upstream produced anything: nothing
    # was billed, and the rollup does not count it as "unknown cost".
    billable: bool = True

    def run_fields(self) -> dict[str, Any]:
        return {
            "cost_usd": self.usd,
            "cost_neurons": self.neurons,
            "cost_estimated": self.estimated,
            "cost_reason": self.reason[:300],
            "cost_prices": self.price_ids,
        }


def neurons_to_usd(neurons: Decimal) -> Decimal:
    return (Decimal(neurons) * USD_PER_NEURON).quantize(USD_QUANTUM, ROUND_HALF_UP)


# --- Prices ---------------------------------------------------------------------


def seed_prices(price_model=None) -> int:
    """Insert every catalog price missing from the table (idempotent: existing
    rows, including admin edits and later versions, are left alone)."""
    if price_model is None:
        from ..models import Price as price_model  # noqa: N813
    return seed_price_list(
        ((spec.name, p.unit, p.usd, p.neurons, p.per) for spec in MODELS for p in spec.prices),
        price_model=price_model, note="seed: Cloudflare's model records / pricing.mdx",
    )


# When a shipped snapshot's price differs from the one in force, the new price
# takes effect from the snapshot's date (runs before it keep the old price).
SNAPSHOT_EFFECTIVE_FROM = datetime(2026, 10, 1, tzinfo=UTC)


def seed_price_list(items, *, price_model=None, note: str, effective_from: datetime | None = None) -> int:
    """Insert ``(model, unit, usd, neurons, per)`` prices as dated ``Price`` versions.

    A unit with no version yet gets one from the seed date (older runs are priced
    too); a unit whose newest version differs gets a new version from
    ``effective_from`` (default: the snapshot's date); an equal one is left alone,
    as are admin edits made later than it.  Returns how many versions were added."""
    if price_model is None:
        from ..models import Price as price_model  # noqa: N813
    newest: dict[tuple[str, str], Any] = {}
    for row in price_model.objects.order_by("model", "unit", "-effective_from"):
        newest.setdefault((row.model, row.unit), row)
    rows = []
    for model, unit, usd, neurons, per in items:
        current = newest.get((model, str(unit)))
        if current is None:
            when = _seed_effective_from()
        elif current.usd_per_unit == usd and current.per == per:
            continue
        else:
            when = effective_from or SNAPSHOT_EFFECTIVE_FROM
            if current.effective_from >= when:
                continue  # a later version (an admin edit, a newer sync) stands
        rows.append(price_model(
            model=model, unit=str(unit), usd_per_unit=usd, neurons_per_unit=neurons,
            per=per, effective_from=when, note=note[:200],
        ))
        newest[(model, str(unit))] = rows[-1]
    price_model.objects.bulk_create(rows, ignore_conflicts=True)  # sends no post_save
    clear_price_cache()
    return len(rows)


def prices_for(model: str, at: datetime | None = None) -> dict[str, Any]:
    """The price in force for each unit of ``model`` at ``at`` (newest version)."""
    from ..models import Price

    at = at or timezone.now()
    current: dict[str, Any] = {}
    for price in Price.objects.filter(model=model, effective_from__lte=at).order_by("unit", "-effective_from"):
        current.setdefault(price.unit, price)
    return current


# Process-local: model -> (monotonic time read, every version of its prices,
# ordered by unit then newest first).  See INFERENCE["PRICE_CACHE_SECONDS"].
_price_cache: dict[str, tuple[float, list[Any]]] = {}


def clear_price_cache(**_kwargs: Any) -> None:
    """Forget every cached price (a signal receiver, hence the kwargs)."""
    _price_cache.clear()


def price_changed(**_kwargs: Any) -> None:
    """post_save / post_delete of Price: clear now, and again once the change
    commits, so a request that re-read the old rows in between is not kept."""
    from django.db import transaction

    clear_price_cache()
    transaction.on_commit(clear_price_cache)


def cached_prices_for(model: str, at: datetime | None = None) -> dict[str, Any]:
    """``prices_for`` from a short-lived per-process cache of all the model's
    versions (the choice by ``effective_from`` is still made per call)."""
    from ..conf import inference_settings
    from ..models import Price

    ttl = float(inference_settings.PRICE_CACHE_SECONDS or 0)
    if ttl <= 0:
        return prices_for(model, at)
    now = time.monotonic()
    entry = _price_cache.get(model)
    if entry is None or now - entry[0] > ttl:
        entry = (now, list(Price.objects.filter(model=model).order_by("unit", "-effective_from")))
        _price_cache[model] = entry
    at = at or timezone.now()
    current: dict[str, Any] = {}
    for price in entry[1]:
        if price.effective_from <= at:
            current.setdefault(price.unit, price)
    return current


# --- Measurement ----------------------------------------------------------------


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def _text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_text_of(v) for v in value)
    if isinstance(value, dict):
        if "content" in value:
            return _text_of(value["content"])
        if "text" in value:
            return _text_of(value["text"])
        return ""
    return str(value)


def prompt_text(task: str, payload: dict[str, Any]) -> str:
    if task == Task.TEXT_GENERATION:
        return _text_of(payload.get("messages")) + _text_of(payload.get("prompt"))
    for key in ("text", "input_text", "prompt"):
        if key in payload:
            return _text_of(payload[key])
    return ""


def output_text(task: str, result: Any) -> str:
    if not isinstance(result, dict):
        return ""
    for key in ("response", "translated_text", "summary", "description"):
        if isinstance(result.get(key), str):
            return result[key]
    return ""


def audio_seconds(data: bytes) -> tuple[Decimal, bool]:
    """(seconds, estimated): the real length from the file's own headers."""
    try:
        import mutagen

        info = mutagen.File(io.BytesIO(data))
        if info is not None and info.info is not None and info.info.length > 0:
            return Decimal(str(info.info.length)), False
    except Exception:  # unreadable audio: fall back to an estimate, flagged
        pass
    return Decimal(len(data)) / Decimal(FALLBACK_AUDIO_BYTES_PER_SECOND), True


def image_size(data: bytes) -> tuple[int, int] | None:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:
        return None


def tiles(width: int, height: int) -> int:
    return math.ceil(width / TILE_SIDE) * math.ceil(height / TILE_SIDE)


MEGAPIXEL = 1024 * 1024


def megapixels(width: int, height: int) -> int:
    """Started megapixels (1024x1024) of a width x height image."""
    return math.ceil(max(0, width) * max(0, height) / MEGAPIXEL)


def cached_input_tokens(usage: dict | None) -> int:
    """Prompt tokens served from cache: OpenAI's ``prompt_tokens_details.cached_tokens``
    (or the Responses API's ``input_tokens_details``), else a flat ``cached_tokens``."""
    if not isinstance(usage, dict):
        return 0
    for details in ("prompt_tokens_details", "input_tokens_details"):
        value = _usage_int(usage.get(details), "cached_tokens")
        if value is not None:
            return max(0, value)
    return max(0, _usage_int(usage, "cached_tokens") or 0)


def _int(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _usage_int(usage: dict | None, key: str) -> int | None:
    if not isinstance(usage, dict) or usage.get(key) is None:
        return None
    try:
        return int(usage[key])
    except (TypeError, ValueError):
        return None


@dataclass
class Measured:
    quantities: dict[str, Decimal]
    # unit -> why its quantity is a local estimate; only units a price uses
    # make the cost estimated.
    guessed: dict[str, str]
    input_tokens: int
    output_tokens: int


def measure(
    model: str,
    task: str,
    payload: dict[str, Any],
    *,
    usage: dict | None,
    result: Any,
    inputs: Iterable[tuple[str, bytes, str]] = (),
    outputs: Iterable[tuple[str, bytes, str]] = (),
) -> Measured:
    """Every quantity the price units could need, from the measured run."""
    q: dict[str, Decimal] = {}
    guessed: dict[str, str] = {}
    inputs, outputs = list(inputs), list(outputs)

    prompt_tokens = _usage_int(usage, "prompt_tokens")
    if prompt_tokens is None:  # the Responses API (gpt-oss) names them differently
        prompt_tokens = _usage_int(usage, "input_tokens")
    if prompt_tokens is None:
        prompt_tokens = estimate_tokens(prompt_text(task, payload))
        guessed[Unit.INPUT_TOKENS] = "input tokens counted locally"
    completion_tokens = _usage_int(usage, "completion_tokens")
    if completion_tokens is None:
        completion_tokens = _usage_int(usage, "output_tokens")
    if completion_tokens is None:
        completion_tokens = estimate_tokens(output_text(task, result))
        guessed[Unit.OUTPUT_TOKENS] = "output tokens counted locally"
    # Cached prompt tokens are billed at their own price, the rest at the input price.
    cached_tokens = min(prompt_tokens, cached_input_tokens(usage))
    q[Unit.INPUT_TOKENS] = Decimal(prompt_tokens - cached_tokens)
    q[Unit.CACHED_INPUT_TOKENS] = Decimal(cached_tokens)
    q[Unit.OUTPUT_TOKENS] = Decimal(completion_tokens)
    q[Unit.REQUEST] = Decimal(1)

    if task == Task.TEXT_TO_IMAGE:
        width, height = payload.get("width"), payload.get("height")
        if width is None or height is None:
            sizes = [image_size(data) for _k, data, ctype in outputs if ctype.startswith("image/")]
            size = next((s for s in sizes if s), None)
            if size:
                width, height = width or size[0], height or size[1]
        width, height = _int(width, DEFAULT_IMAGE_SIDE), _int(height, DEFAULT_IMAGE_SIDE)
        out_tiles = Decimal(tiles(width, height))
        steps = Decimal(_int(payload.get("steps", payload.get("num_steps")),
                             DEFAULT_STEPS.get(model, DEFAULT_STEPS_OTHER)))
        in_sizes = [image_size(data) for _k, data, ctype in inputs if ctype.startswith("image/")]
        in_tiles = Decimal(sum(tiles(*s) for s in in_sizes if s))
        q[Unit.TILE] = out_tiles
        q[Unit.STEP] = steps
        q[Unit.OUTPUT_TILE] = out_tiles
        q[Unit.INPUT_TILE] = in_tiles
        q[Unit.OUTPUT_TILE_STEP] = out_tiles * steps
        q[Unit.INPUT_TILE_STEP] = in_tiles * steps
        # Megapixel pricing: the first (1024x1024) generated, each further one
        # started, and every started megapixel of the input images.
        out_mp = megapixels(width, height)
        q[Unit.FIRST_MEGAPIXEL] = Decimal(1) if out_mp else Decimal(0)
        q[Unit.SUBSEQUENT_MEGAPIXEL] = Decimal(max(0, out_mp - 1))
        q[Unit.INPUT_IMAGE_MEGAPIXEL] = Decimal(sum(megapixels(*s) for s in in_sizes if s))

    # ASR and VAD bill the audio they hear, TTS the audio it speaks.
    hears = task in (Task.AUTOMATIC_SPEECH_RECOGNITION, Task.VOICE_ACTIVITY_DETECTION)
    audio_source = inputs if hears else outputs
    seconds = Decimal(0)
    for _key, data, ctype in audio_source:
        if ctype.startswith("audio/") or hears:
            length, guessed_length = audio_seconds(data)
            seconds += length
            if guessed_length:
                guessed[Unit.AUDIO_MINUTE] = "audio length estimated from its size"
    q[Unit.AUDIO_MINUTE] = seconds / Decimal(60)

    if task == Task.TEXT_TO_SPEECH:
        q[Unit.KCHARS] = Decimal(len(_text_of(payload.get("text", payload.get("prompt"))))) / Decimal(1000)
    q[Unit.IMAGE] = Decimal(1) if task in (Task.IMAGE_CLASSIFICATION, Task.OBJECT_DETECTION) else Decimal(0)
    return Measured(q, guessed, prompt_tokens, completion_tokens)


def price_quantities(
    model: str, quantities: dict[str, Decimal], at: datetime | None, *, guessed: dict[str, str], cached: bool = False
) -> Cost:
    prices = cached_prices_for(model, at) if cached else prices_for(model, at)
    if not prices:
        return Cost(None, None, False, f"No price known for {model}: cost unknown (not $0).")
    usd = Decimal(0)
    neurons = Decimal(0)
    used: list[int] = []
    for unit, price in prices.items():
        amount = quantities.get(unit, Decimal(0))
        if not amount:
            continue
        usd += amount * price.usd_per_unit / price.per
        neurons += amount * price.neurons_per_unit / price.per
        used.append(price.pk)
    notes = [guessed[unit] for unit in prices if unit in guessed and quantities.get(unit)]
    estimated = bool(notes)
    reason = "; ".join(notes)
    return Cost(
        usd.quantize(USD_QUANTUM, ROUND_HALF_UP), neurons.quantize(NEURON_QUANTUM, ROUND_HALF_UP),
        estimated, reason, sorted(used), {k: v for k, v in quantities.items() if v},
    )


def cost_of(
    run,
    *,
    usage: dict | None,
    result: Any,
    outputs: Iterable[tuple[str, bytes, str]] = (),
) -> Cost:
    """The cost of a finished (or partially finished) run."""
    reads_inputs = (Task.AUTOMATIC_SPEECH_RECOGNITION, Task.VOICE_ACTIVITY_DETECTION, Task.TEXT_TO_IMAGE)
    inputs = list(stored_inputs(run)) if run.task in reads_inputs else []
    measured = measure(run.model, run.task, run.input or {}, usage=usage, result=result, inputs=inputs, outputs=outputs)
    reported = usage.get("neurons") if isinstance(usage, dict) else None
    if reported is not None:
        try:
            neurons = Decimal(str(reported)).quantize(NEURON_QUANTUM, ROUND_HALF_UP)
        except ArithmeticError:
            neurons = None
        if neurons is not None and neurons >= 0:
            return Cost(
                neurons_to_usd(neurons), neurons, False, "upstream-reported neurons", [],
                {k: v for k, v in measured.quantities.items() if v},
                measured.input_tokens, measured.output_tokens,
            )
    cost = price_quantities(
        run.model, measured.quantities, run.created_at, guessed=measured.guessed
    )
    cost.input_tokens, cost.output_tokens = measured.input_tokens, measured.output_tokens
    return cost


def safe_cost_of(run, **kwargs: Any) -> Cost:
    """``cost_of`` that never leaves a run unfinished: a pricing bug yields an
    unknown cost with the reason, logged."""
    try:
        return cost_of(run, **kwargs)
    except Exception as exc:
        logger.exception("run %s: pricing failed", run.pk)
        return Cost(None, None, False, f"Pricing error: {type(exc).__name__}: {exc}")


def stored_inputs(run) -> Iterable[tuple[str, bytes, str]]:
    from ..models import RunMedia

    for media in RunMedia.objects.filter(run_id=run.pk, role=RunMedia.Role.INPUT):
        with media.file.open("rb") as fh:
            yield media.field, fh.read(), media.content_type


def not_billed(reason: str) -> Cost:
    return Cost(None, None, False, reason, billable=False)


def estimate_submission(model: str, task: str, payload: dict[str, Any], media: Iterable[Any] = ()) -> Decimal | None:
    """Worst-case cost of a submission, for budget reservations; None when the
    model's price is unknown (never $0: see ``budgets.reserve`` and the
    ``UNKNOWN_PRICE_POLICY`` setting)."""
    inputs = [(m.field, m.data, m.content_type) for m in media]
    max_tokens = _int(payload.get("max_tokens"), DEFAULT_MAX_TOKENS) if task == Task.TEXT_GENERATION else 0
    fake_output: dict[str, Any] = {}
    outputs: list[tuple[str, bytes, str]] = []
    measured = measure(model, task, payload, usage=None, result=fake_output, inputs=inputs, outputs=outputs)
    measured.quantities[Unit.OUTPUT_TOKENS] = Decimal(max_tokens)
    if task == Task.TRANSLATION:
        measured.quantities[Unit.OUTPUT_TOKENS] = measured.quantities[Unit.INPUT_TOKENS] * 2
    if task == Task.TEXT_TO_SPEECH and not measured.quantities.get(Unit.AUDIO_MINUTE):
        # Speech runs about 150 words a minute; a word is about 6 characters.
        chars = len(_text_of(payload.get("text", payload.get("prompt"))))
        measured.quantities[Unit.AUDIO_MINUTE] = Decimal(chars) / Decimal(6 * 150) + Decimal("0.1")
    # The hot path of every submission: prices from the per-process cache.
    cost = price_quantities(model, measured.quantities, None, guessed={}, cached=True)
    return cost.usd


def seed_prices_after_migrate(sender, apps=None, using: str = "default", **kwargs: Any) -> None:
    """post_migrate receiver: seed the catalog's prices (idempotent)."""
    try:
        price_model = apps.get_model("inference", "Price") if apps is not None else None
    except LookupError:  # migrating backwards past the pricing migration
        return
    if price_model is not None:
        seed_prices(price_model)
