"""The run endpoint's 15 input shapes as JSON Schema (Draft 2020-12) data.

Transcribed from ``shared/reference/workers-ai-run-endpoint.txt`` (Cloudflare's
"Execute AI model" page).  Every bound printed on the page is here; beyond the
page we add only what makes a request meaningless upstream anyway:

* byte arrays ("array of number ... constrained to 8-bit unsigned integer
  values") are arrays of integers 0–255 with at least one item;
* ``strength`` is 0–1 (stated in the page's prose, not as min/max);
* message ``role`` is one of the four roles the page names;
* Prompt and Messages exclude each other (``not: {required: [...]}``) so a
  text-generation input has exactly one form.

Unknown properties are allowed everywhere: one task shape serves many models
and models take extra fields (flux ``steps``, whisper-large-v3-turbo
``language``, …).  Per-model limits live in the catalog (``input_limits``).

No ``$ref``: each shape is self-contained so it can be dropped into an OpenAPI
document as is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

from inference.catalog import TASKS, ModelSpec, Task, get_model

# --- building blocks -------------------------------------------------------


def _str(description: str, **kw: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **kw}


def _nonempty(description: str) -> dict[str, Any]:
    return _str(description, minLength=1)


def _num(description: str, minimum: float | None = None, maximum: float | None = None) -> dict:
    schema: dict[str, Any] = {"type": "number", "description": description}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def _bool(description: str) -> dict[str, Any]:
    return {"type": "boolean", "description": description}


def _bytes(description: str) -> dict[str, Any]:
    return {
        "type": "array",
        "description": description,
        # An empty image/audio is never valid; upstream would 400 on it.
        "minItems": 1,
        "items": {"type": "integer", "minimum": 0, "maximum": 255},
    }


def _obj(properties: dict[str, Any], required: list[str] | None = None, **kw: Any) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema.update(kw)
    return schema


def _shape(title: str, properties: dict, required: list[str], **kw: Any) -> dict[str, Any]:
    return {"title": title, **_obj(properties, required, **kw)}


IMAGE_BYTES_DESC = (
    "An array of integers that represent the image data constrained to 8-bit "
    "unsigned integer values"
)
ROLES = ("user", "assistant", "system", "tool")

# Sampling parameters with the bounds of the Prompt / Messages shapes.
_BOUNDED_SAMPLING: dict[str, Any] = {
    "frequency_penalty": _num("Decreases the likelihood of repeating the same lines.", -2, 2),
    "max_tokens": _num("The maximum number of tokens to generate in the response."),
    "presence_penalty": _num("Increases the likelihood of introducing new topics.", -2, 2),
    "raw": _bool("If true, no chat template is applied."),
    "repetition_penalty": _num("Penalty for repeated tokens.", 0, 2),
    "response_format": _obj(
        {
            "json_schema": {"description": "The JSON Schema the output must follow."},
            "type": {"type": "string", "enum": ["json_object", "json_schema"]},
        }
    ),
    "seed": _num("Random seed for reproducibility of the generation.", 1, 9999999999),
    "stream": _bool("If true, the response is streamed back with Server-Sent Events."),
    "temperature": _num("Randomness of the output.", 0, 5),
    "top_k": _num("Limits the choice to the top k most probable tokens.", 1, 50),
    "top_p": _num("Nucleus sampling: cumulative probability considered.", 0.001, 1),
}

# The image-to-text / image-text-to-text shapes list the same parameters
# without any bounds on the page; we do not invent any.
_UNBOUNDED_SAMPLING: dict[str, Any] = {
    "frequency_penalty": _num("Decreases the likelihood of repeating the same lines."),
    "max_tokens": _num("The maximum number of tokens to generate in the response."),
    "presence_penalty": _num("Increases the likelihood of introducing new topics."),
    "repetition_penalty": _num("Penalty for repeated tokens."),
    "seed": _num("Random seed for reproducibility of the generation."),
    "temperature": _num("Randomness of the output."),
    "top_k": _num("Limits the choice to the top k most probable tokens."),
    "top_p": _num("Nucleus sampling: cumulative probability considered."),
}

_TOOL_PARAMETERS = _obj(
    {
        "properties": {
            "type": "object",
            "description": "Definitions of each parameter.",
            "additionalProperties": _obj(
                {
                    "description": _str("A description of the expected parameter."),
                    "type": _str("The data type of the parameter."),
                },
                ["description", "type"],
            ),
        },
        "type": _str("The type of the parameters object (usually 'object')."),
        "required": {"type": "array", "items": {"type": "string"}},
    },
    ["properties", "type"],
)

_TOOL = {
    "oneOf": [
        _obj(
            {
                "description": _str("What the tool does."),
                "name": _str("The tool's name."),
                "parameters": _TOOL_PARAMETERS,
            },
            ["description", "name", "parameters"],
            title="Tool",
        ),
        _obj(
            {
                "function": _obj(
                    {
                        "description": _str("What the function does."),
                        "name": _str("The function's name."),
                        "parameters": _TOOL_PARAMETERS,
                    },
                    ["description", "name", "parameters"],
                ),
                "type": _str("The type of tool (e.g. 'function')."),
            },
            ["function", "type"],
            title="Function",
        ),
    ]
}

_MESSAGE = _obj(
    {
        "content": {
            "oneOf": [
                _str("The content of the message as a string."),
                {
                    "type": "array",
                    "description": "Array of text content parts.",
                    "items": _obj(
                        {"text": _str("Text content"), "type": _str("Type of the content (text)")}
                    ),
                },
            ]
        },
        "role": {"type": "string", "enum": list(ROLES)},
    },
    ["content", "role"],
)

_VISION_MESSAGE = _obj(
    {
        "content": {
            "oneOf": [
                _str("The content of the message as a string."),
                {
                    "type": "array",
                    "description": "Array of content parts (text, image_url, ...).",
                    "items": _obj(
                        {
                            "type": _str("Type of the content part ('text', 'image_url')."),
                            "image_url": _obj(
                                {"url": _str("Image URI with data (data:image/jpeg;base64,...).")},
                                ["url"],
                            ),
                            "text": _str("Text content (when type is 'text')."),
                        },
                        ["type"],
                    ),
                },
            ]
        },
        "role": {"type": "string", "enum": list(ROLES)},
    },
    ["content", "role"],
)

# --- the 15 shapes, in the page's order ------------------------------------

SHAPES: dict[str, dict[str, Any]] = {
    "TextClassification": _shape(
        "TextClassification",
        {"text": _nonempty("The text that you want to classify")},
        ["text"],
    ),
    "TextToImage": _shape(
        "TextToImage",
        {
            "prompt": _nonempty("A text description of the image you want to generate"),
            "guidance": _num("How closely the image adheres to the prompt"),
            "height": _num("The height of the generated image in pixels", 256, 2048),
            "image": _bytes("For img2img: " + IMAGE_BYTES_DESC),
            "image_b64": _str("For img2img: a base64-encoded string of the input image"),
            "mask": _bytes("For inpainting: mask image data as 8-bit unsigned integers"),
            "negative_prompt": _str("Text describing elements to avoid in the image"),
            "num_steps": _num("The number of diffusion steps", maximum=20),
            "seed": _num("Random seed for reproducibility of the image generation"),
            "strength": _num("How strongly img2img transforms the input image", 0, 1),
            "width": _num("The width of the generated image in pixels", 256, 2048),
        },
        ["prompt"],
    ),
    "TextToSpeech": _shape(
        "TextToSpeech",
        {
            "prompt": _nonempty("A text description of the audio you want to generate"),
            "lang": _str("The speech language (e.g. 'en', 'fr'); defaults to 'en'"),
        },
        ["prompt"],
    ),
    "TextEmbeddings": _shape(
        "TextEmbeddings",
        {
            "text": {
                "description": "The text to embed",
                "oneOf": [
                    _str("The text to embed"),
                    {
                        "type": "array",
                        "description": "Batch of text values to embed",
                        "items": {"type": "string"},
                    },
                ],
            }
        },
        ["text"],
    ),
    "AutomaticSpeechRecognition": _shape(
        "AutomaticSpeechRecognition",
        {
            "audio": _bytes(
                "An array of integers that represent the audio data constrained to "
                "8-bit unsigned integer values"
            ),
            "source_lang": _str("The language of the recorded audio"),
            "target_lang": _str("The language to translate the transcription into"),
        },
        ["audio"],
    ),
    "ImageClassification": _shape(
        "ImageClassification", {"image": _bytes(IMAGE_BYTES_DESC)}, ["image"]
    ),
    # The page marks ObjectDetection's image optional; we transcribe that.
    "ObjectDetection": _shape("ObjectDetection", {"image": _bytes(IMAGE_BYTES_DESC)}, []),
    "Prompt": _shape(
        "Prompt",
        {
            "prompt": _nonempty("The input text prompt for the model to generate a response."),
            "lora": _str("Name of the LoRA model to fine-tune the base model."),
            **_BOUNDED_SAMPLING,
        },
        ["prompt"],
        **{"not": {"required": ["messages"]}},
    ),
    "Messages": _shape(
        "Messages",
        {
            "messages": {
                "type": "array",
                "description": "The conversation history.",
                "items": _MESSAGE,
            },
            "functions": {
                "type": "array",
                "items": _obj(
                    {"code": {"type": "string"}, "name": {"type": "string"}}, ["code", "name"]
                ),
            },
            "tools": {
                "type": "array",
                "description": "A list of tools available for the assistant to use.",
                "items": _TOOL,
            },
            **_BOUNDED_SAMPLING,
        },
        ["messages"],
        **{"not": {"required": ["prompt"]}},
    ),
    "Translation": _shape(
        "Translation",
        {
            "target_lang": _str("The language code to translate the text into (e.g. 'es')"),
            "text": _nonempty("The text to be translated"),
            "source_lang": _str("The language code of the source text; defaults to 'en'"),
        },
        ["target_lang", "text"],
    ),
    "Summarization": _shape(
        "Summarization",
        {
            "input_text": _nonempty("The text that you want the model to summarize"),
            "max_length": _num("The maximum length of the generated summary in tokens"),
        },
        ["input_text"],
    ),
    "ImageToText": _shape(
        "ImageToText",
        {
            "image": _bytes(IMAGE_BYTES_DESC),
            "prompt": _str("The input text prompt for the model to generate a response."),
            "raw": _bool("If true, no chat template is applied."),
            **_UNBOUNDED_SAMPLING,
        },
        ["image"],
    ),
    "ImageToTextBase64": _shape(
        "ImageToTextBase64",
        {
            "image": _str("Image in base64 encoded format."),
            "prompt": _nonempty("The input text prompt for the model to generate a response."),
            "ignore_eos": _bool("Whether to keep generating after the EOS token."),
            **_UNBOUNDED_SAMPLING,
        },
        ["image", "prompt"],
    ),
    "ImageTextToText": _shape(
        "ImageTextToText",
        {
            "image": _str("Image in base64 encoded format."),
            "messages": {
                "type": "array",
                "description": "The conversation history.",
                "items": _VISION_MESSAGE,
            },
            "ignore_eos": _bool("Whether to keep generating after the EOS token."),
            **_UNBOUNDED_SAMPLING,
        },
        ["image", "messages"],
    ),
    "MultimodalEmbeddings": _shape(
        "MultimodalEmbeddings",
        {
            "image": _str("Image in base64 encoded format.", minLength=1),
            "text": {"type": "array", "items": {"type": "string"}},
        },
        [],
    ),
    # No run-endpoint shape is published for VAD (smart-turn): its record's schema
    # is what validates it; a model outside the catalog gets any object.
    "VoiceActivityDetection": {"title": "VoiceActivityDetection", "type": "object", "properties": {}},
}

# Which shapes each task accepts (more than one: the input must match exactly one).
TASK_SHAPES: dict[str, tuple[str, ...]] = {
    Task.TEXT_CLASSIFICATION: ("TextClassification",),
    Task.TEXT_TO_IMAGE: ("TextToImage",),
    Task.TEXT_TO_SPEECH: ("TextToSpeech",),
    Task.TEXT_EMBEDDINGS: ("TextEmbeddings",),
    Task.AUTOMATIC_SPEECH_RECOGNITION: ("AutomaticSpeechRecognition",),
    Task.IMAGE_CLASSIFICATION: ("ImageClassification",),
    Task.OBJECT_DETECTION: ("ObjectDetection",),
    Task.TEXT_GENERATION: ("Prompt", "Messages"),
    Task.TRANSLATION: ("Translation",),
    Task.SUMMARIZATION: ("Summarization",),
    Task.IMAGE_TO_TEXT: ("ImageToText", "ImageToTextBase64"),
    Task.IMAGE_TEXT_TO_TEXT: ("ImageTextToText",),
    Task.MULTIMODAL_EMBEDDINGS: ("MultimodalEmbeddings",),
    Task.VOICE_ACTIVITY_DETECTION: ("VoiceActivityDetection",),
}
TASK_SHAPES = {str(task): shapes for task, shapes in TASK_SHAPES.items()}
SHAPE_TASKS: dict[str, str] = {s: t for t, shapes in TASK_SHAPES.items() for s in shapes}


def merge_schema(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` over a copy of ``base``: nested dicts merge,
    other values replace, and ``None`` deletes the key (so a model can turn a
    byte-array field into a base64 string and drop ``items``)."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_schema(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def build_schema(task: str, limits: dict[str, Any] | None = None) -> dict[str, Any]:
    """The input schema of ``task`` with a model's ``limits`` merged into each
    shape.  One shape: the shape itself; several: ``{"oneOf": [...]}``."""
    shapes = [merge_schema(SHAPES[name], limits or {}) for name in TASK_SHAPES[task]]
    if len(shapes) == 1:
        return shapes[0]
    return {"title": task, "oneOf": shapes}


TASK_SCHEMAS: dict[str, dict[str, Any]] = {task: build_schema(task) for task in TASKS}


def input_schema(task: str, *, model: str | None = None) -> dict[str, Any]:
    """A fresh copy of the input schema: the catalog model's own (its record's)
    when ``model`` is given and known, else the task's run-endpoint shape(s).

    Raises ``KeyError`` for an unknown task."""
    spec = get_model(model) if model else None
    if spec is not None and spec.input_schema and spec.task == task:
        return copy.deepcopy(spec.input_schema)
    if spec is not None and spec.input_limits:
        return build_schema(task, spec.input_limits)
    return copy.deepcopy(TASK_SCHEMAS[task])


# --- media fields ----------------------------------------------------------

IMAGE = "image"
AUDIO = "audio"
UINT8 = "uint8"  # JSON array of integers 0-255
BASE64 = "base64"  # JSON string, standard base64
OBJECT = "object"  # {"body": <base64>, "contentType": "audio/..."} (nova-3)


@dataclass(frozen=True)
class MediaField:
    """A field of a task's input that carries an image or audio file."""

    name: str  # the JSON field
    kind: str  # IMAGE or AUDIO
    encoding: str  # how upstream wants it: UINT8 or BASE64 (the task's default)
    upload: str = ""  # the multipart file that fills it ("" = inline JSON only)
    # Whether the catalog model decides the encoding (ModelSpec.audio_input /
    # image_input) rather than the page fixing it.
    per_model: bool = False


# Which fields carry media, per the reference page: byte arrays ("array of
# number ... 8-bit unsigned") or base64 strings ("Image in base64 encoded format").
MEDIA_FIELDS: dict[str, tuple[MediaField, ...]] = {
    Task.TEXT_TO_IMAGE.value: (
        MediaField("image", IMAGE, UINT8, upload="image"),  # img2img / inpainting
        MediaField("image_b64", IMAGE, BASE64),
        MediaField("mask", IMAGE, UINT8, upload="mask"),  # inpainting
    ),
    Task.AUTOMATIC_SPEECH_RECOGNITION.value: (
        MediaField("audio", AUDIO, UINT8, upload="audio", per_model=True),
    ),
    Task.IMAGE_CLASSIFICATION.value: (MediaField("image", IMAGE, UINT8, upload="image"),),
    Task.OBJECT_DETECTION.value: (MediaField("image", IMAGE, UINT8, upload="image"),),
    Task.IMAGE_TO_TEXT.value: (MediaField("image", IMAGE, UINT8, upload="image", per_model=True),),
    Task.IMAGE_TEXT_TO_TEXT.value: (MediaField("image", IMAGE, BASE64, upload="image"),),
    Task.MULTIMODAL_EMBEDDINGS.value: (MediaField("image", IMAGE, BASE64, upload="image"),),
    Task.VOICE_ACTIVITY_DETECTION.value: (
        MediaField("audio", AUDIO, BASE64, upload="audio", per_model=True),
    ),
}


def media_fields(task: str, model: ModelSpec | str | None = None) -> tuple[MediaField, ...]:
    """The media fields of ``task`` with the model's encodings applied.

    A model whose task has no image field but which declares ``image_input``
    (a vision LLM such as llama-3.2-11b-vision) gains an ``image`` field."""
    spec = get_model(model) if isinstance(model, str) else model
    fields = list(MEDIA_FIELDS.get(task, ()))
    if spec is None:
        return tuple(fields)
    out = []
    for f in fields:
        if f.per_model:
            encoding = spec.audio_input if f.kind == AUDIO else spec.image_input
            if encoding:
                f = replace(f, encoding=encoding)
        out.append(f)
    if spec.image_input and not any(f.kind == IMAGE for f in out):
        out.append(MediaField("image", IMAGE, spec.image_input, upload="image", per_model=True))
    return tuple(out)
