"""Input cases for every shape of the run endpoint, as data.

Reusable by the end-to-end API tests: ``VALID_CASES`` must be accepted by both
``validate_input`` and ``extract_media`` (media are real, tiny PNG / WAV files,
so sniffing passes too); ``INVALID_CASES`` must be rejected by both with an
error under ``expected_path`` (relative to the input: the API prefixes
``input.``; ``""`` is the input as a whole).

``WIRE_ONLY_INVALID_CASES`` are rejected by ``validate_input`` (which checks the
exact body Cloudflare takes) but accepted by ``extract_media``, which re-encodes
inline media into the form the model needs (e.g. a byte array for
whisper-large-v3-turbo becomes a base64 string).

Tuples: ``(shape, task, model, payload)`` and
``(shape, task, model, payload, expected_path)``.  ``model`` is a catalog id, or
None for the two tasks without a public model (image-text-to-text,
multimodal-embeddings).
"""

from __future__ import annotations

import base64
import io
import struct
import wave
import zlib
from typing import Any


def make_png(width: int = 1, height: int = 1) -> bytes:
    """A valid RGB PNG, built by hand (no Pillow needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    raw = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_wav(samples: int = 80) -> bytes:
    """A valid 8 kHz mono 16-bit WAV of silence."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * samples)
    return buf.getvalue()


PNG = make_png()
WAV = make_wav()
PNG_LIST = list(PNG)
WAV_LIST = list(WAV)
PNG_B64 = base64.b64encode(PNG).decode()
WAV_B64 = base64.b64encode(WAV).decode()
PNG_DATA_URI = "data:image/png;base64," + PNG_B64

LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"
LLAMA_70B = "@cf/meta/llama-3.3-70b-instruct-fp8-fast"
SDXL = "@cf/stabilityai/stable-diffusion-xl-base-1.0"
IMG2IMG = "@cf/runwayml/stable-diffusion-v1-5-img2img"
INPAINT = "@cf/runwayml/stable-diffusion-v1-5-inpainting"
FLUX = "@cf/black-forest-labs/flux-1-schnell"
MELOTTS = "@cf/myshell-ai/melotts"
BGE = "@cf/baai/bge-base-en-v1.5"
WHISPER = "@cf/openai/whisper"
TURBO = "@cf/openai/whisper-large-v3-turbo"
RESNET = "@cf/microsoft/resnet-50"
DETR = "@cf/facebook/detr-resnet-50"
M2M = "@cf/meta/m2m100-1.2b"
BART = "@cf/facebook/bart-large-cnn"
LLAVA = "@cf/llava-hf/llava-1.5-7b-hf"
UFORM = "@cf/unum/uform-gen2-qwen-500m"
DISTILBERT = "@cf/huggingface/distilbert-sst-2-int8"

_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "The city"}},
    "required": ["city"],
}
LEGACY_TOOL = {"name": "weather", "description": "Get the weather", "parameters": _PARAMS}
FUNCTION_TOOL = {
    "type": "function",
    "function": {"name": "weather", "description": "Get the weather", "parameters": _PARAMS},
}
USER = {"role": "user", "content": "Hello"}

Case = tuple[str, str, str | None, Any]
InvalidCase = tuple[str, str, str | None, Any, str]

# One valid payload per shape first (15), then edge cases.
VALID_CASES: list[Case] = [
    ("TextClassification", "text-classification", DISTILBERT, {"text": "I love this"}),
    (
        "TextToImage",
        "text-to-image",
        IMG2IMG,
        {
            "prompt": "a cat in a hat",
            "negative_prompt": "dogs",
            "image": PNG_LIST,
            "strength": 0.5,
            "guidance": 7.5,
            "num_steps": 20,
            "height": 256,
            "width": 2048,
            "seed": 42,
        },
    ),
    ("TextToSpeech", "text-to-speech", MELOTTS, {"prompt": "Hello there", "lang": "en"}),
    ("TextEmbeddings", "text-embeddings", BGE, {"text": ["first", "second"]}),
    (
        "AutomaticSpeechRecognition",
        "automatic-speech-recognition",
        WHISPER,
        {"audio": WAV_LIST, "source_lang": "en", "target_lang": "en"},
    ),
    ("ImageClassification", "image-classification", RESNET, {"image": PNG_LIST}),
    ("ObjectDetection", "object-detection", DETR, {"image": PNG_LIST}),
    (
        "Prompt",
        "text-generation",
        LLAMA,
        {
            "prompt": "Tell me a joke",
            "lora": "my-adapter",
            "max_tokens": 64,
            "raw": False,
            "stream": True,
            "temperature": 0,
            "top_k": 50,
            "top_p": 0.001,
            "seed": 9999999999,
            "frequency_penalty": -2,
            "presence_penalty": 2,
            "repetition_penalty": 0,
            "response_format": {"type": "json_object"},
        },
    ),
    (
        "Messages",
        "text-generation",
        LLAMA_70B,
        {
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
                {"role": "assistant", "content": "Let me check."},
                {"role": "tool", "content": '{"temp": 21}'},
            ],
            "tools": [LEGACY_TOOL, FUNCTION_TOOL],
            "functions": [{"name": "weather", "code": "return 21"}],
            "response_format": {"type": "json_schema", "json_schema": {"type": "object"}},
            "temperature": 5,
            "top_k": 1,
            "top_p": 1,
            "seed": 1,
            "repetition_penalty": 2,
            "max_tokens": 256,
            "stream": False,
        },
    ),
    (
        "Translation",
        "translation",
        M2M,
        {"text": "Hello", "source_lang": "en", "target_lang": "fr"},
    ),
    (
        "Summarization",
        "summarization",
        BART,
        {"input_text": "A long text. " * 20, "max_length": 50},
    ),
    (
        "ImageToText",
        "image-to-text",
        LLAVA,
        {"image": PNG_LIST, "prompt": "Describe the image", "max_tokens": 100, "raw": False},
    ),
    (
        "ImageToTextBase64",
        "image-to-text",
        UFORM,
        {"image": PNG_B64, "prompt": "What is this?", "ignore_eos": False, "temperature": 0.2},
    ),
    (
        "ImageTextToText",
        "image-text-to-text",
        None,
        {
            "image": PNG_B64,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this picture?"},
                        {"type": "image_url", "image_url": {"url": PNG_DATA_URI}},
                    ],
                }
            ],
            "max_tokens": 128,
        },
    ),
    (
        "MultimodalEmbeddings",
        "multimodal-embeddings",
        None,
        {"image": PNG_B64, "text": ["a red square"]},
    ),
    # --- edges and per-model limits that must pass ---
    ("TextToImage", "text-to-image", SDXL, {"prompt": "x", "height": 2048, "width": 256}),
    (
        "TextToImage",
        "text-to-image",
        INPAINT,
        {"prompt": "fill", "image": PNG_LIST, "mask": PNG_LIST, "strength": 1},
    ),
    ("TextToImage", "text-to-image", FLUX, {"prompt": "x", "steps": 8}),
    ("TextEmbeddings", "text-embeddings", BGE, {"text": "just one string"}),
    ("TextEmbeddings", "text-embeddings", BGE, {"text": ["t"] * 100}),
    ("AutomaticSpeechRecognition", "automatic-speech-recognition", TURBO, {"audio": WAV_B64}),
    ("ObjectDetection", "object-detection", DETR, {}),  # the page marks image optional
    ("Messages", "text-generation", LLAMA, {"messages": [USER]}),
    ("MultimodalEmbeddings", "multimodal-embeddings", None, {"text": ["only text"]}),
]

INVALID_CASES: list[InvalidCase] = [
    # TextClassification
    ("TextClassification", "text-classification", DISTILBERT, {}, "text"),
    ("TextClassification", "text-classification", DISTILBERT, {"text": ""}, "text"),
    ("TextClassification", "text-classification", DISTILBERT, {"text": 5}, "text"),
    ("TextClassification", "text-classification", DISTILBERT, ["text"], ""),
    # TextToImage
    ("TextToImage", "text-to-image", SDXL, {}, "prompt"),
    ("TextToImage", "text-to-image", SDXL, {"prompt": ""}, "prompt"),
    ("TextToImage", "text-to-image", SDXL, {"prompt": "x", "height": 255}, "height"),
    ("TextToImage", "text-to-image", SDXL, {"prompt": "x", "width": 2049}, "width"),
    ("TextToImage", "text-to-image", SDXL, {"prompt": "x", "num_steps": 21}, "num_steps"),
    (
        "TextToImage",
        "text-to-image",
        IMG2IMG,
        {"prompt": "x", "image": PNG_LIST, "strength": 1.5},
        "strength",
    ),
    (
        "TextToImage",
        "text-to-image",
        INPAINT,
        {"prompt": "x", "image": PNG_LIST, "mask": [137, 256]},
        "mask[1]",
    ),
    ("TextToImage", "text-to-image", FLUX, {"prompt": "x", "steps": 9}, "steps"),
    # TextToSpeech
    ("TextToSpeech", "text-to-speech", MELOTTS, {}, "prompt"),
    ("TextToSpeech", "text-to-speech", MELOTTS, {"prompt": ""}, "prompt"),
    ("TextToSpeech", "text-to-speech", MELOTTS, {"prompt": "x", "lang": 1}, "lang"),
    # TextEmbeddings
    ("TextEmbeddings", "text-embeddings", None, {}, "text"),
    ("TextEmbeddings", "text-embeddings", BGE, {"text": 5}, "text"),
    ("TextEmbeddings", "text-embeddings", BGE, {"text": ["a", 5]}, "text[1]"),
    ("TextEmbeddings", "text-embeddings", BGE, {"text": ["t"] * 101}, "text"),
    # AutomaticSpeechRecognition
    ("AutomaticSpeechRecognition", "automatic-speech-recognition", WHISPER, {}, "audio"),
    ("AutomaticSpeechRecognition", "automatic-speech-recognition", WHISPER, {"audio": []}, "audio"),
    (
        "AutomaticSpeechRecognition",
        "automatic-speech-recognition",
        WHISPER,
        {"audio": [82, 73, -1]},
        "audio[2]",
    ),
    (
        "AutomaticSpeechRecognition",
        "automatic-speech-recognition",
        WHISPER,
        {"audio": [82, 1.5]},
        "audio[1]",
    ),
    (
        "AutomaticSpeechRecognition",
        "automatic-speech-recognition",
        WHISPER,
        {"audio": WAV_LIST, "source_lang": 5},
        "source_lang",
    ),
    # ImageClassification
    ("ImageClassification", "image-classification", RESNET, {}, "image"),
    ("ImageClassification", "image-classification", RESNET, {"image": [137, 300]}, "image[1]"),
    ("ImageClassification", "image-classification", RESNET, {"image": {"a": 1}}, "image"),
    ("ImageClassification", "image-classification", RESNET, {"image": [True]}, "image[0]"),
    # ObjectDetection
    ("ObjectDetection", "object-detection", DETR, {"image": [1, -5]}, "image[1]"),
    ("ObjectDetection", "object-detection", DETR, {"image": 5}, "image"),
    ("ObjectDetection", "object-detection", DETR, {"image": []}, "image"),
    # Prompt
    ("Prompt", "text-generation", LLAMA, {"prompt": ""}, "prompt"),
    ("Prompt", "text-generation", LLAMA, {"prompt": 5}, "prompt"),
    ("Prompt", "text-generation", LLAMA, {"prompt": "x", "temperature": 5.1}, "temperature"),
    ("Prompt", "text-generation", LLAMA, {"prompt": "x", "top_k": 0}, "top_k"),
    ("Prompt", "text-generation", LLAMA, {"prompt": "x", "top_p": 0}, "top_p"),
    ("Prompt", "text-generation", LLAMA, {"prompt": "x", "seed": 10000000000}, "seed"),
    ("Prompt", "text-generation", LLAMA, {"prompt": "x", "seed": 0}, "seed"),
    (
        "Prompt",
        "text-generation",
        LLAMA,
        {"prompt": "x", "frequency_penalty": 2.5},
        "frequency_penalty",
    ),
    (
        "Prompt",
        "text-generation",
        LLAMA,
        {"prompt": "x", "presence_penalty": -2.1},
        "presence_penalty",
    ),
    (
        "Prompt",
        "text-generation",
        LLAMA,
        {"prompt": "x", "repetition_penalty": -0.1},
        "repetition_penalty",
    ),
    (
        "Prompt",
        "text-generation",
        LLAMA,
        {"prompt": "x", "response_format": {"type": "xml"}},
        "response_format.type",
    ),
    ("Prompt", "text-generation", LLAMA, {"prompt": "x", "stream": "yes"}, "stream"),
    ("Prompt", "text-generation", LLAMA, {}, ""),
    ("Prompt", "text-generation", LLAMA, {"prompt": "x", "messages": [USER]}, ""),
    # Messages
    ("Messages", "text-generation", LLAMA_70B, {"messages": "hi"}, "messages"),
    (
        "Messages",
        "text-generation",
        LLAMA_70B,
        {"messages": [{"role": "robot", "content": "x"}]},
        "messages[0].role",
    ),
    (
        "Messages",
        "text-generation",
        LLAMA_70B,
        {"messages": [USER, {"role": "user"}]},
        "messages[1].content",
    ),
    (
        "Messages",
        "text-generation",
        LLAMA_70B,
        {"messages": [{"role": "user", "content": 5}]},
        "messages[0].content",
    ),
    (
        "Messages",
        "text-generation",
        LLAMA_70B,
        {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
        "messages[0].content[0].text",
    ),
    (
        "Messages",
        "text-generation",
        LLAMA_70B,
        {"messages": [USER], "tools": [{"name": "x", "description": "d"}]},
        "tools[0].parameters",
    ),
    (
        "Messages",
        "text-generation",
        LLAMA_70B,
        {
            "messages": [USER],
            "tools": [
                {"type": "function", "function": {"description": "d", "parameters": _PARAMS}}
            ],
        },
        "tools[0].function.name",
    ),
    (
        "Messages",
        "text-generation",
        LLAMA_70B,
        {"messages": [USER], "functions": [{"name": "f"}]},
        "functions[0].code",
    ),
    (
        "Messages",
        "text-generation",
        LLAMA_70B,
        {"messages": [USER], "temperature": -1},
        "temperature",
    ),
    # Translation
    ("Translation", "translation", M2M, {"text": "Hello"}, "target_lang"),
    ("Translation", "translation", M2M, {"text": "", "target_lang": "fr"}, "text"),
    ("Translation", "translation", M2M, {"text": "x", "target_lang": 5}, "target_lang"),
    # Summarization
    ("Summarization", "summarization", BART, {}, "input_text"),
    ("Summarization", "summarization", BART, {"input_text": ""}, "input_text"),
    ("Summarization", "summarization", BART, {"input_text": "x", "max_length": "10"}, "max_length"),
    # ImageToText
    ("ImageToText", "image-to-text", LLAVA, {"prompt": "x"}, "image"),
    ("ImageToText", "image-to-text", LLAVA, {"image": [1, 256]}, "image[1]"),
    ("ImageToText", "image-to-text", LLAVA, {"image": PNG_LIST, "raw": "no"}, "raw"),
    (
        "ImageToText",
        "image-to-text",
        LLAVA,
        {"image": PNG_LIST, "max_tokens": "many"},
        "max_tokens",
    ),
    # ImageToTextBase64
    ("ImageToTextBase64", "image-to-text", UFORM, {"image": PNG_B64, "prompt": 5}, "prompt"),
    (
        "ImageToTextBase64",
        "image-to-text",
        UFORM,
        {"image": PNG_B64, "prompt": "x", "temperature": "hot"},
        "temperature",
    ),
    ("ImageToTextBase64", "image-to-text", UFORM, {"image": 5, "prompt": "x"}, "image"),
    # ImageTextToText
    ("ImageTextToText", "image-text-to-text", None, {"image": PNG_B64}, "messages"),
    ("ImageTextToText", "image-text-to-text", None, {"messages": [USER]}, "image"),
    (
        "ImageTextToText",
        "image-text-to-text",
        None,
        {"image": PNG_B64, "messages": [{"role": "user", "content": [{"text": "x"}]}]},
        "messages[0].content[0].type",
    ),
    (
        "ImageTextToText",
        "image-text-to-text",
        None,
        {
            "image": PNG_B64,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
        },
        "messages[0].content[0].image_url.url",
    ),
    (
        "ImageTextToText",
        "image-text-to-text",
        None,
        {"image": PNG_B64, "messages": [{"role": "me", "content": "x"}]},
        "messages[0].role",
    ),
    # MultimodalEmbeddings
    ("MultimodalEmbeddings", "multimodal-embeddings", None, {"image": ""}, "image"),
    ("MultimodalEmbeddings", "multimodal-embeddings", None, {"image": 5}, "image"),
    ("MultimodalEmbeddings", "multimodal-embeddings", None, {"text": "abc"}, "text"),
    ("MultimodalEmbeddings", "multimodal-embeddings", None, {"text": ["a", 1]}, "text[1]"),
]

WIRE_ONLY_INVALID_CASES: list[InvalidCase] = [
    # turbo takes base64; extract_media would convert the array.
    (
        "AutomaticSpeechRecognition",
        "automatic-speech-recognition",
        TURBO,
        {"audio": WAV_LIST},
        "audio",
    ),
    # Base64 image-to-text needs a prompt; extract_media re-encodes the image as
    # bytes for uform (the byte-array form, where prompt is optional).
    ("ImageToTextBase64", "image-to-text", UFORM, {"image": PNG_B64}, "prompt"),
    ("ImageToTextBase64", "image-to-text", UFORM, {"image": PNG_B64, "prompt": ""}, "prompt"),
    # Inline media must be bytes on the wire; extract_media decodes base64 first.
    ("ImageClassification", "image-classification", RESNET, {"image": PNG_B64}, "image"),
]

VALID_CASES.append(("VoiceActivityDetection", "voice-activity-detection", None, {"audio": WAV_B64}))
INVALID_CASES += [
    ("VoiceActivityDetection", "voice-activity-detection", None, "audio", ""),
    ("VoiceActivityDetection", "voice-activity-detection", None, [WAV_B64], ""),
    ("VoiceActivityDetection", "voice-activity-detection", None, 5, ""),
]

# Shapes every table must cover.
ALL_SHAPES = (
    "VoiceActivityDetection",
    "TextClassification",
    "TextToImage",
    "TextToSpeech",
    "TextEmbeddings",
    "AutomaticSpeechRecognition",
    "ImageClassification",
    "ObjectDetection",
    "Prompt",
    "Messages",
    "Translation",
    "Summarization",
    "ImageToText",
    "ImageToTextBase64",
    "ImageTextToText",
    "MultimodalEmbeddings",
)


# These tables pin the run endpoint's shapes: what a model outside the catalog is
# validated against.  A catalog model is validated by its own Cloudflare record
# (tests/tasks/test_records.py walks those), so the cases run without a model,
# except those whose point is a model's own schema.
RECORD_CASE_MODELS = frozenset({TURBO, FLUX, BGE})


def _shape_case(case):
    return (*case[:2], case[2] if case[2] in RECORD_CASE_MODELS else None, *case[3:])


VALID_CASES = [_shape_case(c) for c in VALID_CASES]
INVALID_CASES = [_shape_case(c) for c in INVALID_CASES]
WIRE_ONLY_INVALID_CASES = [_shape_case(c) for c in WIRE_ONLY_INVALID_CASES]
