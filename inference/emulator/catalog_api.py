"""The emulator's model catalog endpoints: ``ai/models/search`` and ``ai/models/schema``.

Built from ``inference.catalog`` (Cloudflare's records, plus models registered at
runtime), in the shape Cloudflare's search and schema endpoints answer, so ``inference_sync_models`` can be tested
against the emulator exactly as it runs against Cloudflare.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from inference import catalog
from inference.catalog import ModelSpec, OutputKind, Task
from inference.records import TASK_SLUGS, UNIT_LABELS

_NAMESPACE = uuid.UUID("6f0c1f8e-5a0e-4b53-9d7c-6b1f3f0f2a10")

def catalog_models() -> list[ModelSpec]:
    """What Cloudflare lists: the current models (retired ones are no longer served)."""
    return catalog.current_models()


_TASK_NAMES = {slug: name for name, slug in TASK_SLUGS.items()}


def _task_name(slug: str) -> str:
    """Cloudflare's own task name ("Text-to-Image"), or a title-cased slug."""
    return _TASK_NAMES.get(slug) or slug.replace("-", " ").title()


def _author(name: str) -> str:
    parts = name.split("/")
    return parts[1] if len(parts) > 2 else ""


def model_item(spec: ModelSpec) -> dict[str, Any]:
    """One search result, shaped like Cloudflare's record (properties as a list)."""
    task = str(spec.task)
    props = dict(spec.properties)
    props.setdefault("beta", "true" if spec.beta else "false")
    if spec.planned_deprecation:
        props["planned_deprecation_date"] = spec.planned_deprecation
    properties: list[dict[str, Any]] = [{"property_id": k, "value": v} for k, v in props.items()]
    if spec.prices:
        properties.append({
            "property_id": "price",
            "value": [
                {"unit": UNIT_LABELS.get(str(p.unit), str(p.unit)), "price": float(p.usd), "currency": "USD"}
                for p in spec.prices
            ],
        })
    return {
        "id": str(uuid.uuid5(_NAMESPACE, spec.name)),
        "name": spec.name,
        "description": spec.description or f"{spec.name} ({_task_name(task)}), served by the cfai Workers AI emulator.",
        "source": 1,
        "task": {
            "id": str(uuid.uuid5(_NAMESPACE, "task:" + task)),
            "name": _task_name(task),
            "description": f"{_task_name(task)} models",
        },
        "tags": [],
        "properties": properties,
    }


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


def search(models: Iterable[ModelSpec], params: Mapping[str, str]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Filter and paginate: returns (items of the page, result_info)."""
    task = (params.get("task") or "").lower()
    text = (params.get("search") or "").lower()
    author = (params.get("author") or "").lower()
    hide_experimental = _truthy(params.get("hide_experimental"))
    try:
        page = max(1, int(params.get("page") or 1))
        per_page = min(1000, max(1, int(params.get("per_page") or 20)))
    except ValueError:
        page, per_page = 1, 20
    matched = []
    for spec in sorted(models, key=lambda m: m.name):
        slug = str(spec.task)
        if task and task not in (slug, _task_name(slug).lower(), slug.replace("-", " ")):
            continue
        if author and _author(spec.name).lower() != author:
            continue
        if hide_experimental and spec.beta:
            continue
        item = model_item(spec)
        if text and text not in spec.name.lower() and text not in item["description"].lower():
            continue
        matched.append(item)
    start = (page - 1) * per_page
    items = matched[start : start + per_page]
    info = {"page": page, "per_page": per_page, "count": len(items), "total_count": len(matched)}
    return items, info


_STR = {"type": "string"}
_NUM = {"type": "number"}
_BYTES = {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 255}}
_LABELS = {"type": "array", "items": {"type": "object", "properties": {"label": _STR, "score": _NUM}}}
_VECTORS = {
    "type": "object",
    "properties": {"shape": {"type": "array", "items": _NUM},
                   "data": {"type": "array", "items": {"type": "array", "items": _NUM}}},
}
_MESSAGES = {
    "type": "array",
    "items": {"type": "object", "properties": {"role": _STR, "content": {}}, "required": ["role", "content"]},
}
_DESCRIPTION = {"type": "object", "properties": {"description": _STR}}


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


_SCHEMAS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    Task.TEXT_CLASSIFICATION: (_obj({"text": _STR}, ["text"]), _LABELS),
    Task.TEXT_TO_IMAGE: (
        _obj({"prompt": _STR, "width": _NUM, "height": _NUM, "num_steps": _NUM, "steps": _NUM,
              "seed": _NUM, "negative_prompt": _STR, "guidance": _NUM}, ["prompt"]),
        {"type": "string", "contentMediaType": "image/png", "format": "binary"},
    ),
    Task.TEXT_TO_SPEECH: (_obj({"prompt": _STR, "lang": _STR}, ["prompt"]), _obj({"audio": _STR})),
    Task.TEXT_EMBEDDINGS: (
        _obj({"text": {"oneOf": [_STR, {"type": "array", "items": _STR, "maxItems": 100}]}}, ["text"]),
        _VECTORS,
    ),
    Task.AUTOMATIC_SPEECH_RECOGNITION: (
        _obj({"audio": _BYTES, "source_lang": _STR, "target_lang": _STR}, ["audio"]),
        _obj({"text": _STR, "word_count": _NUM, "vtt": _STR,
              "words": {"type": "array", "items": _obj({"word": _STR, "start": _NUM, "end": _NUM})}},
             ["text"]),
    ),
    Task.IMAGE_CLASSIFICATION: (_obj({"image": _BYTES}, ["image"]), _LABELS),
    Task.OBJECT_DETECTION: (
        _obj({"image": _BYTES}),
        {"type": "array", "items": _obj({
            "label": _STR, "score": _NUM,
            "box": _obj({"xmin": _NUM, "ymin": _NUM, "xmax": _NUM, "ymax": _NUM})})},
    ),
    Task.TEXT_GENERATION: (
        {"oneOf": [
            _obj({"prompt": _STR, "max_tokens": _NUM, "stream": {"type": "boolean"}}, ["prompt"]),
            _obj({"messages": _MESSAGES, "max_tokens": _NUM, "stream": {"type": "boolean"},
                  "tools": {"type": "array"}}, ["messages"]),
        ]},
        _obj({"response": _STR, "tool_calls": {"type": "array"},
              "usage": _obj({"prompt_tokens": _NUM, "completion_tokens": _NUM, "total_tokens": _NUM})}),
    ),
    Task.TRANSLATION: (
        _obj({"text": _STR, "source_lang": _STR, "target_lang": _STR}, ["text", "target_lang"]),
        _obj({"translated_text": _STR}),
    ),
    Task.SUMMARIZATION: (_obj({"input_text": _STR, "max_length": _NUM}, ["input_text"]), _obj({"summary": _STR})),
    Task.IMAGE_TO_TEXT: (
        _obj({"image": {"oneOf": [_BYTES, _STR]}, "prompt": _STR, "max_tokens": _NUM}, ["image"]),
        _DESCRIPTION,
    ),
    Task.IMAGE_TEXT_TO_TEXT: (_obj({"image": _STR, "messages": _MESSAGES, "max_tokens": _NUM}, ["messages"]),
                              _DESCRIPTION),
    Task.MULTIMODAL_EMBEDDINGS: (_obj({"image": _STR, "text": {"type": "array", "items": _STR}}), _VECTORS),
}


def schema(spec: ModelSpec) -> dict[str, Any]:
    """``{"input": …, "output": …}``: the model's record schemas, else its task's."""
    if spec.input_schema is not None:
        return {"input": spec.input_schema, "output": spec.output_schema or {}}
    input_schema, output_schema = _SCHEMAS.get(str(spec.task), ({"type": "object"}, {}))
    if spec.output_kind == OutputKind.JPEG_BYTES:
        output_schema = {"type": "string", "contentMediaType": "image/jpeg", "format": "binary"}
    elif spec.output_kind == OutputKind.BASE64_IMAGE:
        output_schema = _obj({"image": {"type": "string", "contentEncoding": "base64"}})
    elif spec.output_kind == OutputKind.AUDIO_BYTES:
        output_schema = {"type": "string", "contentMediaType": "audio/mpeg", "format": "binary"}
    return {"input": input_schema, "output": output_schema}
