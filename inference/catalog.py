"""The model catalog: which task each model runs, what it returns, how it is priced.

Data, not branches: code asks the catalog ("what does this model output?") rather
than testing model names.  The seed below comes from cloudflare-facts.md; the
database table refreshed by ``inference_sync_models`` adds models on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any


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


class OutputKind(StrEnum):
    JSON = "json"  # JSON envelope, nothing binary
    PNG_BYTES = "png"  # raw image/png body, no envelope
    JPEG_BYTES = "jpeg"  # raw image/jpeg body, no envelope
    BASE64_IMAGE = "base64_image"  # JSON, result.image is base64
    BASE64_AUDIO = "base64_audio"  # JSON, result.audio is base64 MP3
    AUDIO_BYTES = "audio_bytes"  # raw audio/mpeg body


class Unit(StrEnum):
    INPUT_TOKENS = "input_tokens"
    OUTPUT_TOKENS = "output_tokens"
    TILE = "tile"  # one 512x512 tile of a generated image
    STEP = "step"  # one diffusion step
    AUDIO_MINUTE = "audio_minute"
    KCHARS = "1k_chars"
    IMAGE = "image"


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
        return bool(self.prices)

    @property
    def rate_limit(self) -> int | None:
        """Default requests per minute of this model's rate class, if published."""
        return RATE_LIMITS.get(self.rate_limit_class)


def _tokens(
    usd_in: str, neurons_in: str, usd_out: str | None = None, neurons_out: str | None = None
) -> tuple[PriceSpec, ...]:
    """Per-million-token prices; one price when input and output are not split."""
    prices = [PriceSpec(Unit.INPUT_TOKENS, Decimal(usd_in), Decimal(neurons_in), 1_000_000)]
    if usd_out is not None and neurons_out is not None:
        prices.append(
            PriceSpec(Unit.OUTPUT_TOKENS, Decimal(usd_out), Decimal(neurons_out), 1_000_000)
        )
    return tuple(prices)


def _per(unit: Unit, usd: str, neurons: str, per: int = 1) -> PriceSpec:
    return PriceSpec(unit, Decimal(usd), Decimal(neurons), per)


def _llm(name: str, prices: tuple[PriceSpec, ...] = (), **kw: Any) -> ModelSpec:
    # Every text-generation model accepts "stream": true.
    return ModelSpec(name, Task.TEXT_GENERATION, streams=True, prices=prices, **kw)


# Per-model input limits (cloudflare-facts.md), kept as data.
_EMBEDDING_BATCH = {"properties": {"text": {"maxItems": 100}}}
_FLUX_STEPS = {"properties": {"steps": {"type": "integer", "maximum": 8}}}
# whisper-large-v3-turbo takes the audio as a base64 string, not a byte array.
_AUDIO_BASE64 = {
    "properties": {
        "audio": {
            "type": "string",
            "minLength": 1,
            "description": "The audio file, base64-encoded",
            "items": None,
            "minItems": None,
        }
    }
}

T = Task
MODELS: tuple[ModelSpec, ...] = (
    # --- text generation (prices: cloudflare-facts.md; others unpublished) ---
    _llm("@cf/meta/llama-3.1-8b-instruct", _tokens("0.282", "25608", "0.827", "75147")),
    _llm("@cf/meta/llama-3.1-8b-instruct-fp8-fast", _tokens("0.045", "4119", "0.384", "34868")),
    _llm("@cf/meta/llama-3.1-8b-instruct-awq"),
    _llm("@cf/meta/llama-3.2-1b-instruct", _tokens("0.027", "2457", "0.201", "18252")),
    _llm("@cf/meta/llama-3.2-3b-instruct", _tokens("0.051", "4625", "0.335", "30475")),
    _llm(
        "@cf/meta/llama-3.2-11b-vision-instruct",
        _tokens("0.049", "4410", "0.676", "61493"),
        image_input="uint8",
    ),
    _llm("@cf/meta/llama-3.3-70b-instruct-fp8-fast", _tokens("0.293", "26668", "2.253", "204805")),
    _llm("@cf/meta/llama-4-scout-17b-16e-instruct"),
    _llm("@cf/meta/llama-3-8b-instruct"),
    _llm("@cf/meta/llama-3-8b-instruct-awq"),
    _llm("@cf/meta/llama-2-7b-chat-fp16"),
    _llm("@cf/meta/llama-2-7b-chat-int8"),
    _llm("@cf/meta/llama-guard-3-8b"),
    _llm("@cf/mistral/mistral-7b-instruct-v0.1", _tokens("0.110", "10000", "0.190", "17300")),
    _llm("@cf/mistral/mistral-7b-instruct-v0.2-lora", beta=True),
    _llm("@hf/mistral/mistral-7b-instruct-v0.2", beta=True),
    _llm("@cf/mistralai/mistral-small-3.1-24b-instruct"),
    _llm("@hf/google/gemma-7b-it", beta=True),
    _llm("@cf/google/gemma-3-12b-it"),
    _llm("@cf/qwen/qwen1.5-0.5b-chat", beta=True),
    _llm("@cf/qwen/qwen1.5-1.8b-chat", beta=True),
    _llm("@cf/qwen/qwen1.5-7b-chat-awq", beta=True),
    _llm("@cf/qwen/qwen1.5-14b-chat-awq", beta=True),
    _llm("@cf/qwen/qwq-32b"),
    _llm("@cf/qwen/qwen2.5-coder-32b-instruct"),
    _llm("@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"),
    _llm("@cf/openai/gpt-oss-120b", _tokens("0.350", "31818", "0.750", "68182")),
    _llm("@cf/openai/gpt-oss-20b"),
    _llm("@hf/nousresearch/hermes-2-pro-mistral-7b", beta=True),
    _llm("@cf/tinyllama/tinyllama-1.1b-chat-v1.0", beta=True),
    _llm("@cf/microsoft/phi-2", beta=True),
    # --- text to image ---
    ModelSpec(
        "@cf/black-forest-labs/flux-1-schnell",
        T.TEXT_TO_IMAGE,
        OutputKind.BASE64_IMAGE,
        input_limits=_FLUX_STEPS,
        prices=(_per(Unit.TILE, "0.0000528", "4.80"), _per(Unit.STEP, "0.0001056", "9.60")),
    ),
    ModelSpec("@cf/leonardo/lucid-origin", T.TEXT_TO_IMAGE, OutputKind.BASE64_IMAGE),
    ModelSpec(
        "@cf/leonardo/phoenix-1.0",
        T.TEXT_TO_IMAGE,
        OutputKind.JPEG_BYTES,
        prices=(_per(Unit.TILE, "0.005830", "530"), _per(Unit.STEP, "0.000110", "10")),
    ),
    ModelSpec(
        "@cf/stabilityai/stable-diffusion-xl-base-1.0",
        T.TEXT_TO_IMAGE,
        OutputKind.PNG_BYTES,
        beta=True,
    ),
    ModelSpec(
        "@cf/bytedance/stable-diffusion-xl-lightning",
        T.TEXT_TO_IMAGE,
        OutputKind.PNG_BYTES,
        beta=True,
    ),
    ModelSpec("@cf/lykon/dreamshaper-8-lcm", T.TEXT_TO_IMAGE, OutputKind.PNG_BYTES, beta=True),
    ModelSpec(
        "@cf/runwayml/stable-diffusion-v1-5-img2img",
        T.TEXT_TO_IMAGE,
        OutputKind.PNG_BYTES,
        beta=True,
    ),
    ModelSpec(
        "@cf/runwayml/stable-diffusion-v1-5-inpainting",
        T.TEXT_TO_IMAGE,
        OutputKind.PNG_BYTES,
        beta=True,
    ),
    # --- text to speech ---
    ModelSpec(
        "@cf/myshell-ai/melotts",
        T.TEXT_TO_SPEECH,
        OutputKind.BASE64_AUDIO,
        prices=(_per(Unit.AUDIO_MINUTE, "0.0002", "18.63"),),
    ),
    ModelSpec(
        "@cf/deepgram/aura-1",
        T.TEXT_TO_SPEECH,
        OutputKind.AUDIO_BYTES,
        prices=(_per(Unit.KCHARS, "0.015", "1363.64"),),
    ),
    # --- text embeddings (≤ 100 texts per call) ---
    ModelSpec(
        "@cf/baai/bge-small-en-v1.5",
        T.TEXT_EMBEDDINGS,
        input_limits=_EMBEDDING_BATCH,
        prices=_tokens("0.020", "1841"),
    ),
    ModelSpec(
        "@cf/baai/bge-base-en-v1.5",
        T.TEXT_EMBEDDINGS,
        input_limits=_EMBEDDING_BATCH,
        prices=_tokens("0.067", "6058"),
    ),
    ModelSpec(
        "@cf/baai/bge-large-en-v1.5",
        T.TEXT_EMBEDDINGS,
        input_limits=_EMBEDDING_BATCH,
        rate_class="bge-large",
        prices=_tokens("0.204", "18582"),
    ),
    ModelSpec(
        "@cf/baai/bge-m3",
        T.TEXT_EMBEDDINGS,
        input_limits=_EMBEDDING_BATCH,
        prices=_tokens("0.012", "1075"),
    ),
    # --- automatic speech recognition ---
    ModelSpec(
        "@cf/openai/whisper",
        T.AUTOMATIC_SPEECH_RECOGNITION,
        prices=(_per(Unit.AUDIO_MINUTE, "0.0005", "41.14"),),
    ),
    ModelSpec("@cf/openai/whisper-tiny-en", T.AUTOMATIC_SPEECH_RECOGNITION, beta=True),
    ModelSpec(
        "@cf/openai/whisper-large-v3-turbo",
        T.AUTOMATIC_SPEECH_RECOGNITION,
        audio_input="base64",
        input_limits=_AUDIO_BASE64,
        prices=(_per(Unit.AUDIO_MINUTE, "0.0005", "46.63"),),
    ),
    # --- classification, detection ---
    ModelSpec(
        "@cf/huggingface/distilbert-sst-2-int8",
        T.TEXT_CLASSIFICATION,
        prices=_tokens("0.026", "2394"),
    ),
    ModelSpec(
        "@cf/microsoft/resnet-50",
        T.IMAGE_CLASSIFICATION,
        prices=(_per(Unit.IMAGE, "2.51", "228055", 1_000_000),),
    ),
    ModelSpec("@cf/facebook/detr-resnet-50", T.OBJECT_DETECTION, beta=True),
    # --- translation, summarization ---
    ModelSpec(
        "@cf/meta/m2m100-1.2b",
        T.TRANSLATION,
        prices=(
            _per(Unit.INPUT_TOKENS, "0.342", "31050", 1_000_000),
            _per(Unit.OUTPUT_TOKENS, "0.342", "31050", 1_000_000),
        ),
    ),
    ModelSpec("@cf/facebook/bart-large-cnn", T.SUMMARIZATION, beta=True),
    # --- image to text ---
    ModelSpec("@cf/llava-hf/llava-1.5-7b-hf", T.IMAGE_TO_TEXT, beta=True),
    ModelSpec("@cf/unum/uform-gen2-qwen-500m", T.IMAGE_TO_TEXT, beta=True),
)

_BY_NAME: dict[str, ModelSpec] = {m.name: m for m in MODELS}


def get_model(name: str) -> ModelSpec | None:
    """The seed entry for ``name``, or None for models outside the catalog."""
    return _BY_NAME.get(name)


def models_for_task(task: str) -> list[ModelSpec]:
    return [m for m in MODELS if m.task == task]


def rate_limit_for(model: str | None = None, task: str | None = None) -> int | None:
    """Default requests/minute for a model (by its rate class) or, for a model
    outside the catalog, for its task.  None when nothing is published."""
    spec = get_model(model) if model else None
    if spec is not None:
        return spec.rate_limit
    return RATE_LIMITS.get(task or "")
