"""The model catalog: which task each model runs, what it takes and returns, how
it is priced and when it retires.

Data, not branches: code asks the catalog ("what does this model output?") rather
than testing model names.  Every entry is built from Cloudflare's own published
model record (``inference.records``: the snapshot shipped in the package); the
database table refreshed by ``inference_sync_models`` adds models on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from . import records


class Task(StrEnum):
    TEXT_CLASSIFICATION = "text-classification"
    TEXT_TO_IMAGE = "text-to-image"
    TEXT_TO_SPEECH = "text-to-speech"
    TEXT_EMBEDDINGS = "text-embeddings"
    AUTOMATIC_SPEECH_RECOGNITION = "automatic-speech-recognition"
    IMAGE_CLASSIFICATION = "image-classification"
    OBJECT_DETECTION = "object-detection"
    TEXT_GENERATION = "text-generation"
    TRANSLATION = "translation"
    SUMMARIZATION = "summarization"
    IMAGE_TO_TEXT = "image-to-text"
    IMAGE_TEXT_TO_TEXT = "image-text-to-text"
    MULTIMODAL_EMBEDDINGS = "multimodal-embeddings"
    VOICE_ACTIVITY_DETECTION = "voice-activity-detection"


TASKS: tuple[str, ...] = tuple(t.value for t in Task)

# Tasks whose input shape exists on the run endpoint's reference page but for
# which no public Workers AI model id is known (cloudflare-facts.md): they are
# validated when the caller names the task, and have no catalog entry.
SHAPE_ONLY_TASKS: frozenset[str] = frozenset(
    {Task.IMAGE_TEXT_TO_TEXT.value, Task.MULTIMODAL_EMBEDDINGS.value}
)

# Default requests per minute per rate class (cloudflare-facts.md "Rate limits per
# task").  A class is the task slug unless a model names its own (bge-large).
# Tasks missing here have no published default.
RATE_LIMITS: dict[str, int] = {
    "automatic-speech-recognition": 720,
    "image-classification": 3000,
    "image-to-text": 720,
    "object-detection": 3000,
    "summarization": 1500,
    "text-classification": 2000,
    "text-embeddings": 3000,
    "bge-large": 1500,
    "text-generation": 300,
    "text-to-image": 720,
    "translation": 720,
}

# Per-model limits limits.mdx publishes outside the records (requests per minute).
MODEL_RATE_LIMITS: dict[str, int] = {
    "@cf/baai/bge-large-en-v1.5": 1500,
    "@hf/thebloke/mistral-7b-instruct-v0.1-awq": 400,
    "@cf/microsoft/phi-2": 720,
    "@cf/qwen/qwen1.5-0.5b-chat": 1500,
    "@cf/qwen/qwen1.5-1.8b-chat": 720,
    "@cf/qwen/qwen1.5-14b-chat-awq": 150,
    "@cf/tinyllama/tinyllama-1.1b-chat-v1.0": 720,
    "@cf/moonshotai/kimi-k2.6": 20,
    "@cf/moonshotai/kimi-k2.7-code": 20,
    "@cf/zai-org/glm-5.2": 20,
    "@cf/runwayml/stable-diffusion-v1-5-img2img": 1500,
}


class OutputKind(StrEnum):
    JSON = "json"  # JSON envelope, nothing binary
    PNG_BYTES = "png"  # raw image/png body, no envelope
    JPEG_BYTES = "jpeg"  # raw image/jpeg body, no envelope
    BASE64_IMAGE = "base64_image"  # JSON, result.image is base64
    BASE64_AUDIO = "base64_audio"  # JSON, result.audio is base64 MP3
    AUDIO_BYTES = "audio_bytes"  # raw audio/mpeg body


class Unit(StrEnum):
    """Every unit Cloudflare publishes a price in (see ``records.price_unit``)."""

    INPUT_TOKENS = "input_tokens"
    OUTPUT_TOKENS = "output_tokens"
    CACHED_INPUT_TOKENS = "cached_input_tokens"
    TILE = "tile"  # one 512x512 tile of a generated image
    STEP = "step"  # one diffusion step
    INPUT_TILE = "input_tile"  # one 512x512 tile of an input image
    OUTPUT_TILE = "output_tile"  # one 512x512 tile of the generated image
    INPUT_TILE_STEP = "input_tile_step"  # input tile x diffusion step
    OUTPUT_TILE_STEP = "output_tile_step"  # output tile x diffusion step
    FIRST_MEGAPIXEL = "first_megapixel"  # the first megapixel generated (1024x1024)
    SUBSEQUENT_MEGAPIXEL = "subsequent_megapixel"  # each further generated megapixel
    INPUT_IMAGE_MEGAPIXEL = "input_image_megapixel"  # each megapixel of input images
    AUDIO_MINUTE = "audio_minute"
    KCHARS = "1k_chars"
    IMAGE = "image"
    REQUEST = "request"  # one inference request


@dataclass(frozen=True)
class PriceSpec:
    """A price in the seed: ``usd`` and ``neurons`` per ``per`` units."""

    unit: Unit
    usd: Decimal
    neurons: Decimal
    per: int = 1


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    output_kind: OutputKind = OutputKind.JSON
    streams: bool = False  # accepts "stream": true (SSE)
    # How audio input is sent: "uint8" (array of 0-255) or "base64" (string).
    audio_input: str = "uint8"
    # Rate-limit class (cloudflare-facts.md "Rate limits per task"); default = task.
    rate_class: str = ""
    prices: tuple[PriceSpec, ...] = ()
    # Extra JSON-schema constraints for this model's input, merged over the task's.
    # Merged over the task's input schema by inference.tasks.validate_input (a
    # deep merge; a None value deletes the key).  Per-model limits live here.
    input_limits: dict = field(default_factory=dict)
    beta: bool = False
    # How an image input is sent: "uint8" or "base64"; "" = the task's default
    # (inference.tasks.media.MEDIA_FIELDS).  Set on a model whose task has no
    # image field (a vision LLM) it adds an ``image`` media field.
    image_input: str = ""
    # Cloudflare's own record: draft-07 input/output JSON Schemas and properties.
    input_schema: dict | None = None
    output_schema: dict | None = None
    description: str = ""
    properties: dict = field(default_factory=dict)
    retired_on: str | None = None  # YYYY-MM-DD: refused from this day
    planned_deprecation: str | None = None  # the record's planned_deprecation_date
    replacement: str | None = None  # what Cloudflare names instead
    # False: no published price (unknown, never free); True with zero prices: free.
    price_known: bool = False

    @property
    def rate_limit_class(self) -> str:
        return self.rate_class or self.task

    @property
    def binary_output(self) -> bool:
        return self.output_kind != OutputKind.JSON

    @property
    def cost_known(self) -> bool:
        """False for models without a published price: their cost is unknown,
        which is not the same as free (never record $0 for them)."""
        return bool(self.prices) or self.price_known

    def is_retired(self, today: date | None = None) -> bool:
        """True from the retirement date on (Cloudflare refuses it from then)."""
        when = self.retired_on or self.planned_deprecation
        return bool(when) and (today or date.today()).isoformat() >= when

    def deprecation_pending(self, today: date | None = None) -> str | None:
        """The retirement date while it is still ahead, else None."""
        when = self.retired_on or self.planned_deprecation
        if when and (today or date.today()).isoformat() < when:
            return when
        return None

    @property
    def rate_limit(self) -> int | None:
        """Default requests per minute: the model's own (limits.mdx), else its rate class's."""
        return MODEL_RATE_LIMITS.get(self.name) or RATE_LIMITS.get(self.rate_limit_class)


# Neurons are what Cloudflare bills: $0.011 per 1,000 (pricing.mdx).
USD_PER_NEURON = Decimal("0.011") / Decimal(1000)

OBJECT = "object"  # a {"body": ..., "contentType": ...} media object (nova-3, smart-turn)


def _variants(schema: Any) -> list[dict[str, Any]]:
    """A schema's alternatives (oneOf/anyOf), or the schema itself."""
    if not isinstance(schema, dict):
        return []
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        return [v for alt in alternatives for v in _variants(alt)]
    return [schema]


def media_encoding(schema: dict | None, field_name: str) -> str:
    """How the record's input schema takes media field ``field_name``: "uint8" (array
    of 0-255), "base64" (string), "object" ({body, contentType}) or "" (no such
    field).  With several forms, a byte array wins, then a string."""
    forms: list[str] = []
    for branch in _variants(schema):
        prop = (branch.get("properties") or {}).get(field_name)
        for variant in _variants(prop):
            kind = variant.get("type")
            if kind == "array":
                forms.append("uint8")
            elif kind == "string":
                forms.append("base64")
            elif kind == "object":
                forms.append(OBJECT)
    for preferred in ("uint8", "base64", OBJECT):
        if preferred in forms:
            return preferred
    return ""


def raw_body_input(schema: dict | None) -> bool:
    """True when the record accepts the media as the raw request body
    (``{"type": "string", "format": "binary"}`` at the top)."""
    return any(v.get("type") == "string" and v.get("format") == "binary" for v in _variants(schema))


def multipart_input(schema: dict | None) -> bool:
    """True for models that only take a multipart form (FLUX.2)."""
    return any("multipart" in (v.get("required") or ()) or "multipart" in (v.get("properties") or {})
               for v in _variants(schema))


# A record without an output schema (a search-only listing): what the task's
# models return.  Safe for the binary kinds: the output helpers accept both raw
# bytes and base64-in-JSON for every binary kind.
_TASK_OUTPUT_KIND: dict[str, OutputKind] = {
    "text-to-image": OutputKind.PNG_BYTES,
    "text-to-speech": OutputKind.BASE64_AUDIO,
}


def output_kind_of(schema: dict | None, task: str = "") -> OutputKind:
    """The output kind from the record's output schema and its ``contentType``:
    a JSON object with a base64 ``image``/``audio`` string wins over a binary form."""
    if not schema:
        return _TASK_OUTPUT_KIND.get(task, OutputKind.JSON)
    variants = _variants(schema)
    for v in variants:
        props = v.get("properties") or {}
        if v.get("type") == "object" or props:
            if (props.get("image") or {}).get("type") == "string":
                return OutputKind.BASE64_IMAGE
            if (props.get("audio") or {}).get("type") == "string":
                return OutputKind.BASE64_AUDIO
    for v in variants:
        content_type = str(v.get("contentType") or v.get("contentMediaType") or "")
        if v.get("format") == "binary" or (content_type and "json" not in content_type):
            if content_type == "image/jpeg":
                return OutputKind.JPEG_BYTES
            if content_type.startswith("image/"):
                return OutputKind.PNG_BYTES
            if content_type.startswith("audio/"):
                return OutputKind.AUDIO_BYTES
    return OutputKind.JSON


def _price_spec(price: records.Price) -> PriceSpec:
    neurons = price.neurons
    if neurons is None:
        neurons = (price.usd / USD_PER_NEURON).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return PriceSpec(Unit(price.unit), price.usd, neurons, price.per)


def spec_from_entry(entry: records.Entry) -> ModelSpec:
    """A catalog entry from Cloudflare's record (``inference.records.Entry``)."""
    prices = tuple(_price_spec(p) for p in entry.prices or ())
    return ModelSpec(
        name=entry.name,
        task=entry.task,
        output_kind=output_kind_of(entry.output_schema, entry.task),
        streams=entry.streams,
        audio_input=media_encoding(entry.input_schema, "audio") or "uint8",
        image_input=media_encoding(entry.input_schema, "image"),
        rate_class="bge-large" if entry.name == "@cf/baai/bge-large-en-v1.5" else "",
        prices=prices,
        beta=entry.beta,
        input_schema=entry.input_schema,
        output_schema=entry.output_schema,
        description=entry.description,
        properties=dict(entry.properties),
        retired_on=entry.retired_on,
        planned_deprecation=entry.planned_deprecation,
        replacement=entry.replacement,
        price_known=entry.prices is not None,
    )


MODELS: tuple[ModelSpec, ...] = tuple(
    spec_from_entry(e) for _, e in sorted(records.snapshot().items())
)

_BY_NAME: dict[str, ModelSpec] = {m.name: m for m in MODELS}


def get_model(name: str) -> ModelSpec | None:
    """The seed entry for ``name``, or None for models outside the catalog."""
    return _BY_NAME.get(name)


def current_models() -> list[ModelSpec]:
    """Every model not retired today."""
    return [m for m in MODELS if not m.is_retired()]


def models_for_task(task: str, *, include_retired: bool = False) -> list[ModelSpec]:
    return [m for m in MODELS if m.task == task and (include_retired or not m.is_retired())]


def rate_limit_for(model: str | None = None, task: str | None = None) -> int | None:
    """Default requests/minute for a model (by its rate class) or, for a model
    outside the catalog, for its task.  None when nothing is published."""
    spec = get_model(model) if model else None
    if spec is not None:
        return spec.rate_limit
    return RATE_LIMITS.get(task or "")
