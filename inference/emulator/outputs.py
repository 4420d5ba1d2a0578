"""Deterministic model outputs for every Workers AI task, shaped like the real ones.

Everything is derived from a hash of (model, input) so the same request always gets
the same answer (tests can compare runs; caches can be checked), while different
inputs get different answers. Media is real media: PNG/JPEG that Pillow decodes and
MP3 made of genuine MPEG frames whose duration grows with the text, so that costing
by image tiles or by audio minutes downstream sees meaningful numbers.

Return shapes follow the "Returns" section of the run endpoint reference page; the
binary/base64 split follows the catalog's ``OutputKind`` (cloudflare-facts.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import random
import struct
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw

from inference.catalog import ModelSpec, OutputKind, Task


class InputError(Exception):
    """The input does not fit the task: answered as a Cloudflare error envelope."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class RunOutput:
    """What a run produced: a JSON ``result`` (enveloped), or a raw ``body``.

    For text generation ``tokens`` holds the reply split the way it is streamed;
    ``"".join(tokens) == result["response"]``.
    """

    result: Any = None
    body: bytes | None = None
    content_type: str = "application/json"
    tokens: list[str] = field(default_factory=list)
    usage: dict[str, int] | None = None


@dataclass(frozen=True)
class OutputOptions:
    # Fill images with random noise so they compress badly: lets tests produce large
    # media (about 8 MB at 2048x1400) to exercise upload/storage limits.
    image_noise: bool = False


DEFAULT_IMAGE_SIZE = 256  # real models default to 1024; small keeps the suite fast
MAX_IMAGE_SIZE = 2048
MIN_IMAGE_SIZE = 8
SECONDS_PER_WORD = 0.4  # speech rate used both for TTS output and ASR input
DEFAULT_MAX_TOKENS = 256  # llama-3.1-8b-instruct's default per cloudflare-facts.md

WORDS = (
    "the quick model answers every question with calm and careful words about cloud "
    "workers edge inference tokens latency neurons budget queue result stream image "
    "audio vector label score summary river mountain signal pattern garden lantern "
    "harbor compass meadow orbit velvet amber silver thunder quiet bright simple "
    "gentle rapid distant hidden open steady clear warm cold blue green golden small "
    "large early late always often never together beyond within across"
).split()

IMAGE_LABELS = (
    "tabby cat", "golden retriever", "sports car", "mountain bike", "espresso",
    "lighthouse", "sunflower", "laptop", "acoustic guitar", "red fox", "container ship",
    "teapot", "volcano", "park bench", "umbrella",
)
OBJECT_LABELS = ("person", "cat", "dog", "car", "bicycle", "chair", "cup", "bottle", "laptop")


# --------------------------------------------------------------------------- helpers


def input_seed(model: str, payload: Any) -> int:
    """A stable 64-bit seed for (model, input), ignoring ``stream``.

    Ignoring ``stream`` makes a streamed reply identical to the non-streamed one.
    """
    if isinstance(payload, dict):
        payload = {k: v for k, v in payload.items() if k != "stream"}
    blob = json.dumps([model, payload], sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def _words(rng: random.Random, count: int) -> list[str]:
    return [rng.choice(WORDS) for _ in range(count)]


def _sentence(words: list[str]) -> str:
    if not words:
        return ""
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def word_count(text: str) -> int:
    return len(text.split())


def _require(payload: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if payload.get(n) in (None, "", [])]
    if missing:
        # 5006 is what Cloudflare answers when the input fails the model's JSON schema.
        raise InputError(5006, f"Error: required properties at '/' are {', '.join(repr(n) for n in missing)}")


def _int(payload: dict[str, Any], name: str, default: int) -> int:
    value = payload.get(name, default)
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(5006, f"Type mismatch of '/{name}', expected number") from None


def decode_binary(value: Any, name: str) -> bytes:
    """Bytes of a binary input sent as a uint8 array or as a base64 string."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, list):
        try:
            return bytes(value)
        except (TypeError, ValueError):
            raise InputError(5006, f"Type mismatch of '/{name}': expected an array of 8-bit unsigned integers") from None
    if isinstance(value, str):
        data = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InputError(5004, f"Invalid data type for base64 input: '/{name}'") from None
    raise InputError(5006, f"Type mismatch of '/{name}'")


def _message_text(messages: Any) -> str:
    parts: list[str] = []
    if not isinstance(messages, list):
        raise InputError(5006, "Type mismatch of '/messages', expected array")
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return " ".join(parts)


# ----------------------------------------------------------------------------- media


def png_bytes(width: int, height: int, seed: int, *, noise: bool = False) -> bytes:
    return _image_bytes(width, height, seed, noise=noise, fmt="PNG")


def jpeg_bytes(width: int, height: int, seed: int, *, noise: bool = False) -> bytes:
    return _image_bytes(width, height, seed, noise=noise, fmt="JPEG")


def _image_bytes(width: int, height: int, seed: int, *, noise: bool, fmt: str) -> bytes:
    rng = random.Random(seed)
    if noise:
        # randbytes from a seeded generator: large, incompressible, still deterministic.
        image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x0, x1 = sorted(rng.randrange(width) for _ in range(2))
            y0, y1 = sorted(rng.randrange(height) for _ in range(2))
            draw.rectangle((x0, y0, x1, y1), fill=tuple(rng.randrange(256) for _ in range(3)))
    buffer = io.BytesIO()
    if fmt == "PNG":
        # Noise does not compress anyway; level 1 keeps an 8 MB image under a second.
        image.save(buffer, format="PNG", compress_level=1 if noise else 6)
    else:
        image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


# MPEG-1 Layer III, 32 kbit/s, 32 kHz, mono, no CRC. At these settings a frame is
# exactly 144 * 32000 / 32000 = 144 bytes (no padding slot ever needed) and lasts
# 1152 / 32000 = 36 ms. All-zero side info means every granule is silent, which is a
# valid stream for decoders and for mutagen's duration estimate (bytes * 8 / bitrate).
MP3_FRAME_HEADER = bytes((0xFF, 0xFB, 0x18, 0xC0))
MP3_FRAME_BYTES = 144
MP3_FRAME_SECONDS = 1152 / 32000


def mp3_bytes(duration_s: float) -> bytes:
    """A silent CBR MP3 of about ``duration_s`` seconds (at least one frame)."""
    frames = max(1, math.ceil(duration_s / MP3_FRAME_SECONDS))
    frame = MP3_FRAME_HEADER + bytes(MP3_FRAME_BYTES - len(MP3_FRAME_HEADER))
    return frame * frames


def audio_duration(data: bytes) -> float:
    """Duration of an audio input: exact for MP3, else assumed 128 kbit/s."""
    try:
        from mutagen.mp3 import MP3

        length = MP3(io.BytesIO(data)).info.length
        if length > 0:
            return float(length)
    except Exception:  # anything not an MP3 falls back to the estimate
        pass
    return len(data) / 16000


def _image_size(data: bytes) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # raw bytes that are not an image: assume VGA
        return 640, 480


def embedding_dim(model: str) -> int:
    """bge-small 384, bge-large and bge-m3 1024, everything else (bge-base) 768."""
    if "small" in model:
        return 384
    if "large" in model or model.endswith("-m3") or "bge-m3" in model:
        return 1024
    return 768


def embedding(model: str, text: str, dim: int) -> list[float]:
    """A unit-length vector derived from the text (bge models return normalized vectors)."""
    raw = hashlib.shake_256(f"{model}\x00{text}".encode()).digest(dim * 2)
    values = [v / 32768 for v in struct.unpack(f"<{dim}h", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


# ----------------------------------------------------------------------------- tasks


def generate(spec: ModelSpec, payload: dict[str, Any], options: OutputOptions | None = None) -> RunOutput:
    """The deterministic output of ``spec`` for ``payload``; InputError on bad input."""
    options = options or OutputOptions()
    handler = _HANDLERS.get(str(spec.task))
    if handler is None:
        raise InputError(5007, f"No such model {spec.name} or task")
    rng = random.Random(input_seed(spec.name, payload))
    return handler(spec, payload, rng, options)


def _text_generation(spec: ModelSpec, payload: dict[str, Any], rng: random.Random, _o: OutputOptions) -> RunOutput:
    if payload.get("messages") not in (None, []):
        prompt = _message_text(payload["messages"])
    elif payload.get("prompt"):
        prompt = str(payload["prompt"])
    else:
        # Cloudflare's oneOf error for text generation names both alternatives.
        raise InputError(5006, "Error: oneOf at '/' not met, 0 matches: required properties at '/' are 'prompt', required properties at '/' are 'messages'")
    max_tokens = max(1, _int(payload, "max_tokens", DEFAULT_MAX_TOKENS))
    count = min(max_tokens, 8 + rng.randrange(40))
    words = _words(rng, count)
    words[0] = words[0].capitalize()
    words[-1] += "."
    # One token per word, each after the first carrying its leading space: the stream
    # concatenates to exactly the non-streamed response.
    tokens = [words[0]] + [" " + w for w in words[1:]]
    prompt_tokens = max(1, word_count(prompt))
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": count, "total_tokens": prompt_tokens + count}
    response = "".join(tokens)
    return RunOutput(result={"response": response, "tool_calls": [], "usage": usage}, tokens=tokens, usage=usage)


def _dimension(payload: dict[str, Any], name: str) -> int:
    value = _int(payload, name, DEFAULT_IMAGE_SIZE)
    return min(MAX_IMAGE_SIZE, max(MIN_IMAGE_SIZE, value))


def _text_to_image(spec: ModelSpec, payload: dict[str, Any], rng: random.Random, options: OutputOptions) -> RunOutput:
    _require(payload, "prompt")
    width, height = _dimension(payload, "width"), _dimension(payload, "height")
    seed = rng.getrandbits(64)
    if spec.output_kind == OutputKind.JPEG_BYTES:
        return RunOutput(body=jpeg_bytes(width, height, seed, noise=options.image_noise), content_type="image/jpeg")
    png = png_bytes(width, height, seed, noise=options.image_noise)
    if spec.output_kind == OutputKind.BASE64_IMAGE:
        return RunOutput(result={"image": base64.b64encode(png).decode("ascii")})
    return RunOutput(body=png, content_type="image/png")


def _text_to_speech(spec: ModelSpec, payload: dict[str, Any], rng: random.Random, _o: OutputOptions) -> RunOutput:
    # melotts takes "prompt"; deepgram aura-* takes "text".
    text = payload.get("prompt") or payload.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InputError(5006, "Error: required properties at '/' are 'prompt'")
    audio = mp3_bytes(max(1, word_count(text)) * SECONDS_PER_WORD)
    if spec.output_kind == OutputKind.AUDIO_BYTES:
        return RunOutput(body=audio, content_type="audio/mpeg")
    return RunOutput(result={"audio": base64.b64encode(audio).decode("ascii")})


def _texts(payload: dict[str, Any]) -> list[str]:
    text = payload.get("text")
    if isinstance(text, str) and text:
        return [text]
    if isinstance(text, list) and text and all(isinstance(t, str) for t in text):
        return text
    raise InputError(5006, "Error: required properties at '/' are 'text'")


def _text_embeddings(spec: ModelSpec, payload: dict[str, Any], rng: random.Random, _o: OutputOptions) -> RunOutput:
    texts = _texts(payload)
    dim = embedding_dim(spec.name)
    return RunOutput(result={"shape": [len(texts), dim], "data": [embedding(spec.name, t, dim) for t in texts]})


def _text_classification(spec: ModelSpec, payload: dict[str, Any], rng: random.Random, _o: OutputOptions) -> RunOutput:
    _require(payload, "text")
    top = round(0.5 + rng.random() / 2, 6)
    labels = ["POSITIVE", "NEGATIVE"]
    rng.shuffle(labels)
    return RunOutput(result=[{"label": labels[0], "score": top}, {"label": labels[1], "score": round(1 - top, 6)}])


def _transcript_words(rng: random.Random, duration: float) -> list[dict[str, Any]]:
    count = max(1, round(duration / SECONDS_PER_WORD))
    step = duration / count if duration > 0 else SECONDS_PER_WORD
    return [
        {"word": w, "start": round(i * step, 3), "end": round((i + 1) * step, 3)}
        for i, w in enumerate(_words(rng, count))
    ]


def _vtt_time(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _chunks(words: list[dict[str, Any]], size: int = 8) -> list[list[dict[str, Any]]]:
    return [words[i : i + size] for i in range(0, len(words), size)]


def _asr(spec: ModelSpec, payload: dict[str, Any], rng: random.Random, _o: OutputOptions) -> RunOutput:
    _require(payload, "audio")
    audio = decode_binary(payload["audio"], "audio")
    if not audio:
        raise InputError(5006, "Error: required properties at '/' are 'audio'")
    duration = round(audio_duration(audio), 3)
    words = _transcript_words(rng, duration)
    text = " ".join(w["word"] for w in words)
    cues = [
        f"{_vtt_time(chunk[0]['start'])} --> {_vtt_time(chunk[-1]['end'])}\n{' '.join(w['word'] for w in chunk)}"
        for chunk in _chunks(words)
    ]
    result: dict[str, Any] = {
        "text": text,
        "word_count": len(words),
        "words": words,
        "vtt": "WEBVTT\n\n" + "\n\n".join(cues) + "\n",
    }
    # whisper-large-v3-turbo (the catalog's base64-audio ASR model) answers a richer
    # faster-whisper style object: segments and transcription_info on top.
    if spec.audio_input == "base64" or isinstance(payload["audio"], str):
        result["segments"] = [
            {
                "start": chunk[0]["start"],
                "end": chunk[-1]["end"],
                "text": " ".join(w["word"] for w in chunk),
                "temperature": 0.0,
                "avg_logprob": round(-0.1 - rng.random() / 5, 4),
                "compression_ratio": round(1 + rng.random(), 4),
                "no_speech_prob": round(rng.random() / 20, 4),
                "words": chunk,
            }
            for chunk in _chunks(words)
        ]
        result["transcription_info"] = {
            "language": payload.get("language") or payload.get("source_lang") or "en",
            "language_probability": 0.99,
            "duration": duration,
            "duration_after_vad": duration,
        }
    return RunOutput(result=result)


def _image_classification(spec: ModelSpec, payload: dict[str, Any], rng: random.Random, _o: OutputOptions) -> RunOutput:
    _require(payload, "image")
    decode_binary(payload["image"], "image")
    labels = rng.sample(IMAGE_LABELS, 5)
    remaining, result = 1.0, []
    for label in labels:
        score = remaining * (0.4 + rng.random() / 2)
        remaining -= score
        result.append({"label": label, "score": round(score, 6)})
    return RunOutput(result=result)


def _object_detection(spec: ModelSpec, payload: dict[str, Any], rng: random.Random, _o: OutputOptions) -> RunOutput:
    width, height = 640, 480
    if payload.get("image") not in (None, "", []):
        width, height = _image_size(decode_binary(payload["image"], "image"))
    result = []
    for _ in range(1 + rng.randrange(3)):
        xmin, xmax = sorted(rng.randrange(width + 1) for _ in range(2))
        ymin, ymax = sorted(rng.randrange(height + 1) for _ in range(2))
        result.append({
            "label": rng.choice(OBJECT_LABELS),
            "score": round(0.5 + rng.random() / 2, 6),
            "box": {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax},
        })
    result.sort(key=lambda d: d["score"], reverse=True)
    return RunOutput(result=result)


def _translation(spec: ModelSpec, payload: dict[str, Any], rng: random.Random, _o: OutputOptions) -> RunOutput:
    _require(payload, "text", "target_lang")
    target = str(payload["target_lang"])
    # Word-for-word pseudo translation: same word count (m2m100 bills output tokens).
    translated = [
        WORDS[int.from_bytes(hashlib.sha256(f"{target}:{w}".encode()).digest()[:4], "big") % len(WORDS)]
        for w in str(payload["text"]).split()
    ]
    return RunOutput(result={"translated_text": " ".join(translated)})


def _summarization(spec: ModelSpec, payload: dict[str, Any], rng: random.Random, _o: OutputOptions) -> RunOutput:
    _require(payload, "input_text")
    words = str(payload["input_text"]).split()
    max_length = max(1, _int(payload, "max_length", 1024))
    keep = min(max_length, max(3, len(words) // 4), len(words))
    return RunOutput(result={"summary": " ".join(words[:keep])})


def _description(rng: random.Random, payload: dict[str, Any]) -> str:
    max_tokens = max(1, _int(payload, "max_tokens", DEFAULT_MAX_TOKENS))
    return _sentence(_words(rng, min(max_tokens, 6 + rng.randrange(20))))


def _image_to_text(spec: ModelSpec, payload: dict[str, Any], rng: random.Random, _o: OutputOptions) -> RunOutput:
    _require(payload, "image")
    decode_binary(payload["image"], "image")
    return RunOutput(result={"description": _description(rng, payload)})


def _image_text_to_text(spec: ModelSpec, payload: dict[str, Any], rng: random.Random, _o: OutputOptions) -> RunOutput:
    _require(payload, "messages")
    _message_text(payload["messages"])
    if payload.get("image") not in (None, ""):
        decode_binary(payload["image"], "image")
    return RunOutput(result={"description": _description(rng, payload)})


def _multimodal_embeddings(spec: ModelSpec, payload: dict[str, Any], rng: random.Random, _o: OutputOptions) -> RunOutput:
    texts = payload.get("text") or []
    if isinstance(texts, str):
        texts = [texts]
    image = payload.get("image")
    if not texts and not image:
        raise InputError(5006, "Error: at least one of 'text' or 'image' is required")
    items = list(texts)
    if image:
        decode_binary(image, "image")
        items.append("image:" + hashlib.sha256(str(image).encode()).hexdigest())
    dim = 768
    return RunOutput(result={"shape": [len(items), dim], "data": [embedding(spec.name, t, dim) for t in items]})


_HANDLERS = {
    Task.TEXT_GENERATION.value: _text_generation,
    Task.TEXT_TO_IMAGE.value: _text_to_image,
    Task.TEXT_TO_SPEECH.value: _text_to_speech,
    Task.TEXT_EMBEDDINGS.value: _text_embeddings,
    Task.TEXT_CLASSIFICATION.value: _text_classification,
    Task.AUTOMATIC_SPEECH_RECOGNITION.value: _asr,
    Task.IMAGE_CLASSIFICATION.value: _image_classification,
    Task.OBJECT_DETECTION.value: _object_detection,
    Task.TRANSLATION.value: _translation,
    Task.SUMMARIZATION.value: _summarization,
    Task.IMAGE_TO_TEXT.value: _image_to_text,
    Task.IMAGE_TEXT_TO_TEXT.value: _image_text_to_text,
    Task.MULTIMODAL_EMBEDDINGS.value: _multimodal_embeddings,
}
