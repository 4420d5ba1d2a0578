"""OpenAPI pieces drf-spectacular cannot infer: the per-task request bodies of
``POST /api/runs/`` (one ``oneOf`` branch per task, each carrying that task's
input schema from ``inference.tasks``), and the error bodies."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from .. import catalog
from ..tasks import input_schema
from .serializers import WEBHOOK_EVENTS

_COMMON: dict[str, Any] = {
    "metadata": {"type": "object", "description": "Free-form, stored with the run.",
                 "additionalProperties": True},
    "webhook": {"type": "string", "format": "uri", "maxLength": 2000,
                "description": "URL notified of the run's events."},
    "webhook_events": {"type": "array", "items": {"type": "string", "enum": list(WEBHOOK_EVENTS)}},
}


def task_request_schema(task: str) -> dict[str, Any]:
    """One ``oneOf`` branch: a submission for ``task``.

    The branches exclude each other: a branch matches when ``task`` names it, or,
    with ``task`` omitted, when ``model`` is one of the task's catalog models."""
    models = [m.name for m in catalog.models_for_task(task)]
    which: list[dict[str, Any]] = [{"required": ["task"]}]
    if models:
        which.append({"required": ["model"], "properties": {"model": {"enum": models}}})
    return {
        "title": task,
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": {
                "type": "string", "minLength": 1, "maxLength": 200,
                "description": "Model name. Catalog models for this task: "
                + (", ".join(models) if models else "none (name the task)."),
            },
            "task": {"type": "string", "enum": [task],
                     "description": "Needed only for a model outside the catalog."},
            "input": input_schema(task),
            **_COMMON,
        },
        "anyOf": which,
    }


def run_request_schema() -> dict[str, Any]:
    return {"oneOf": [task_request_schema(task) for task in catalog.TASKS]}


MULTIPART_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string", "minLength": 1, "maxLength": 200},
        "task": {"type": "string", "enum": list(catalog.TASKS)},
        "input": {"type": "string", "description": "The model input as JSON text (see the JSON body)."},
        "image": {"type": "string", "format": "binary", "description": "An image file for the task's image field."},
        "audio": {"type": "string", "format": "binary", "description": "An audio file (speech recognition)."},
        "mask": {"type": "string", "format": "binary", "description": "Inpainting mask image."},
    },
}

FIELD_ERRORS = {
    "type": "object",
    "description": "Field path → messages, e.g. {\"input.messages[0].role\": [\"…\"]}.",
    "additionalProperties": {
        "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"},
                  {"type": "string"}],
    },
}
DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}

ERROR_RESPONSES = {
    400: OpenApiResponse(FIELD_ERRORS, description="Invalid request: nothing stored, queued or sent upstream."),
    401: OpenApiResponse(DETAIL, description="Missing or invalid API key."),
    402: OpenApiResponse(FIELD_ERRORS, description="A budget would be exceeded; the body names it."),
    413: OpenApiResponse(FIELD_ERRORS, description="An upload is larger than MAX_UPLOAD_BYTES."),
    422: OpenApiResponse(FIELD_ERRORS, description="Idempotency-Key reused with a different body."),
    429: OpenApiResponse(DETAIL, description="Throttled; see Retry-After."),
}
NOT_FOUND = {
    401: OpenApiResponse(DETAIL, description="Missing or invalid API key."),
    404: OpenApiResponse(DETAIL, description="No such run visible to you (never 403)."),
}

SUBMIT_PARAMETERS = [
    OpenApiParameter(
        "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER,
        description="Same key + same body within 24 h returns the original run.",
    ),
    OpenApiParameter(
        "Prefer", OpenApiTypes.STR, OpenApiParameter.HEADER,
        description="`wait` or `wait=N`: hold the response up to N s (max 60) until the run finishes.",
    ),
]

SUBMIT_EXAMPLES = [
    OpenApiExample("Chat", request_only=True, value={
        "model": "@cf/meta/llama-3.1-8b-instruct-fp8",
        "input": {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 64},
    }),
    OpenApiExample("Image", request_only=True, value={
        "model": "@cf/stabilityai/stable-diffusion-xl-base-1.0",
        "input": {"prompt": "a lighthouse", "width": 512, "height": 512},
    }),
]


class APIKeyScheme(OpenApiAuthenticationExtension):
    """Documents ``Authorization: Bearer <api key>`` as the API's security scheme."""

    target_class = "inference.api.authentication.APIKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A per-user API key (manage.py inference_create_key USERNAME).",
        }
