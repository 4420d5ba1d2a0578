"""The model catalog: which task each model runs, what it returns, how it is priced.

Data, not branches: code asks the catalog ("what does this model output?") rather
than testing model names.  The seed below comes from cloudflare-facts.md; the
database table refreshed by ``inference_sync_models`` adds models on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum


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
    input_limits: dict = field(default_factory=dict)
    beta: bool = False

    @property
    def rate_limit_class(self) -> str:
        return self.rate_class or self.task

    @property
    def binary_output(self) -> bool:
        return self.output_kind != OutputKind.JSON


def _tokens(usd_in: str, neurons_in: str, usd_out: str | None = None, neurons_out: str | None = None):
    prices = [PriceSpec(Unit.INPUT_TOKENS, Decimal(usd_in), Decimal(neurons_in), 1_000_000)]
    if usd_out is not None:
        prices.append(PriceSpec(Unit.OUTPUT_TOKENS, Decimal(usd_out), Decimal(neurons_out), 1_000_000))
    return tuple(prices)


T = Task
MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("@cf/meta/llama-3.1-8b-instruct", T.TEXT_GENERATION, streams=True,
              prices=_tokens("0.282", "25608", "0.827", "75147")),
    ModelSpec("@cf/black-forest-labs/flux-1-schnell", T.TEXT_TO_IMAGE, OutputKind.BASE64_IMAGE,
              input_limits={"properties": {"steps": {"maximum": 8}}},
              prices=(PriceSpec(Unit.TILE, Decimal("0.0000528"), Decimal("4.80")),
                      PriceSpec(Unit.STEP, Decimal("0.0001056"), Decimal("9.60")))),
    ModelSpec("@cf/stabilityai/stable-diffusion-xl-base-1.0", T.TEXT_TO_IMAGE, OutputKind.PNG_BYTES,
              beta=True),
    ModelSpec("@cf/leonardo/phoenix-1.0", T.TEXT_TO_IMAGE, OutputKind.JPEG_BYTES,
              prices=(PriceSpec(Unit.TILE, Decimal("0.005830"), Decimal("530")),
                      PriceSpec(Unit.STEP, Decimal("0.000110"), Decimal("10")))),
    ModelSpec("@cf/myshell-ai/melotts", T.TEXT_TO_SPEECH, OutputKind.BASE64_AUDIO,
              prices=(PriceSpec(Unit.AUDIO_MINUTE, Decimal("0.0002"), Decimal("18.63")),)),
    ModelSpec("@cf/deepgram/aura-1", T.TEXT_TO_SPEECH, OutputKind.AUDIO_BYTES,
              prices=(PriceSpec(Unit.KCHARS, Decimal("0.015"), Decimal("1363.64")),)),
    ModelSpec("@cf/baai/bge-base-en-v1.5", T.TEXT_EMBEDDINGS,
              input_limits={"properties": {"text": {"maxItems": 100}}},
              prices=_tokens("0.067", "6058")),
    ModelSpec("@cf/openai/whisper", T.AUTOMATIC_SPEECH_RECOGNITION,
              prices=(PriceSpec(Unit.AUDIO_MINUTE, Decimal("0.0005"), Decimal("41.14")),)),
    ModelSpec("@cf/openai/whisper-large-v3-turbo", T.AUTOMATIC_SPEECH_RECOGNITION,
              audio_input="base64",
              prices=(PriceSpec(Unit.AUDIO_MINUTE, Decimal("0.0005"), Decimal("46.63")),)),
    ModelSpec("@cf/huggingface/distilbert-sst-2-int8", T.TEXT_CLASSIFICATION,
              prices=_tokens("0.026", "2394")),
)

_BY_NAME: dict[str, ModelSpec] = {m.name: m for m in MODELS}


def get_model(name: str) -> ModelSpec | None:
    """The seed entry for ``name``, or None for models outside the catalog."""
    return _BY_NAME.get(name)


def models_for_task(task: str) -> list[ModelSpec]:
    return [m for m in MODELS if m.task == task]
