"""Which form fields the playground shows for each task: data, built from the
catalog and the task input schemas so slider bounds match what validation accepts."""

from __future__ import annotations

from typing import Any

from .. import catalog
from ..tasks import TASK_SCHEMAS, media_fields

# (min, max, step, default) used where the task schema gives no bound.  Defaults
# follow Cloudflare's documented defaults where it has them.
SLIDERS: dict[str, tuple[float, float, float, float]] = {
    "max_tokens": (1, 2048, 1, 256),
    "temperature": (0, 5, 0.05, 0.6),
    "top_p": (0.001, 1, 0.001, 0.9),
    "top_k": (1, 50, 1, 40),
    "repetition_penalty": (0, 2, 0.05, 1),
    "width": (256, 2048, 64, 512),
    "height": (256, 2048, 64, 512),
    "num_steps": (1, 20, 1, 8),
    "guidance": (0, 20, 0.5, 7.5),
    "max_length": (16, 1024, 16, 128),
}

T = catalog.Task
TASK_FIELDS: dict[str, list[dict[str, Any]]] = {
    T.TEXT_GENERATION: [
        {"kind": "mode", "name": "mode", "choices": ["prompt", "messages"]},
        {"kind": "prompt", "name": "prompt", "label": "Prompt"},
        {"kind": "messages", "name": "messages", "label": "Chat messages"},
        {"kind": "slider", "name": "max_tokens"},
        {"kind": "slider", "name": "temperature"},
        {"kind": "slider", "name": "top_p"},
        {"kind": "slider", "name": "top_k"},
        {"kind": "slider", "name": "repetition_penalty"},
        {"kind": "checkbox", "name": "stream", "label": "Stream tokens", "streams_only": True},
    ],
    T.TEXT_TO_IMAGE: [
        {"kind": "prompt", "name": "prompt", "label": "Prompt"},
        {"kind": "text", "name": "negative_prompt", "label": "Negative prompt"},
        {"kind": "slider", "name": "width"},
        {"kind": "slider", "name": "height"},
        {"kind": "slider", "name": "num_steps"},
        {"kind": "slider", "name": "guidance"},
    ],
    T.TEXT_TO_SPEECH: [
        {"kind": "prompt", "name": "prompt", "label": "Text to speak"},
        {"kind": "text", "name": "lang", "label": "Language", "value": "en"},
    ],
    T.TEXT_EMBEDDINGS: [
        {"kind": "lines", "name": "text", "label": "Texts to embed (one per line)"},
    ],
    T.TEXT_CLASSIFICATION: [{"kind": "prompt", "name": "text", "label": "Text to classify"}],
    T.TRANSLATION: [
        {"kind": "prompt", "name": "text", "label": "Text to translate"},
        {"kind": "text", "name": "source_lang", "label": "From", "value": "en"},
        {"kind": "text", "name": "target_lang", "label": "To", "value": "fr"},
    ],
    T.SUMMARIZATION: [
        {"kind": "prompt", "name": "input_text", "label": "Text to summarize"},
        {"kind": "slider", "name": "max_length"},
    ],
    T.IMAGE_TO_TEXT: [
        {"kind": "prompt", "name": "prompt", "label": "Question about the image",
         "value": "Describe this image."},
        {"kind": "slider", "name": "max_tokens"},
    ],
    T.AUTOMATIC_SPEECH_RECOGNITION: [],
    T.IMAGE_CLASSIFICATION: [],
    T.OBJECT_DETECTION: [],
}


def _slider(task: str, name: str) -> dict[str, Any]:
    low, high, step, default = SLIDERS[name]
    schema = TASK_SCHEMAS[task]
    shapes = schema.get("oneOf", [schema])
    for shape in shapes:
        prop = shape.get("properties", {}).get(name, {})
        low = prop.get("minimum", low)
        high = prop.get("maximum", high)
    return {"kind": "slider", "name": name, "label": name.replace("_", " "),
            "min": low, "max": high, "step": step, "value": min(max(default, low), high)}


def task_fields(task: str) -> list[dict[str, Any]]:
    fields = []
    for field in TASK_FIELDS.get(task, []):
        fields.append(_slider(task, field["name"]) if field["kind"] == "slider" else dict(field))
    return fields


def playground_catalog() -> list[dict[str, Any]]:
    """The catalog grouped by task, each model with what the form needs to know."""
    groups = []
    for task in catalog.TASKS:
        models = catalog.models_for_task(task)
        if not models or task not in TASK_FIELDS:
            continue
        groups.append({
            "task": task,
            "label": task.replace("-", " ").capitalize(),
            "fields": task_fields(task),
            "models": [
                {
                    "name": m.name,
                    "beta": m.beta,
                    "streams": m.streams,
                    "output_kind": str(m.output_kind),
                    "files": [
                        {"name": f.upload, "kind": f.kind}
                        for f in media_fields(task, m) if f.upload and f.upload != "mask"
                    ],
                }
                for m in models
            ],
        })
    return groups
