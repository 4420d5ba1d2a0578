"""The Cloudflare-compatible endpoint (contract §6).

``POST /client/v4/accounts/{account_id}/ai/run/{model_name}`` answers the way
Cloudflare does, so existing clients (curl, the official SDK with ``base_url``)
work unchanged, while every call is submitted, executed and recorded as a run
through ``services`` (history, cost and budgets apply).  The call runs in the
web process: a proxy cannot afford a queue hop.

Error codes: upstream errors are relayed with their own HTTP status and
``errors`` list.  Our own refusals use Cloudflare's code where one exists
(10000 authentication, 3003 no body, 5006 invalid input, 5007 no such model,
3006 too large, 971 throttled) and ``9000 + HTTP status`` otherwise (a budget
refusal is 402 / 9402).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import unquote

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from ..catalog_db import lifecycle_headers, resolve_model
from ..conf import inference_settings
from ..exceptions import (
    InferenceConfigurationError,
    InferenceError,
    SubmissionError,
    UpstreamTimeoutError,
)
from ..middleware import max_request_bytes
from ..models import APIKey, Run
from ..services.access import authenticate_api_key
from ..services.inline import execute_inline, submit_inline
from ..services.submission import Submission
from .streaming import iterate_in_thread

logger = logging.getLogger(__name__)

AUTH_ERROR = 10000
METHOD_NOT_ALLOWED = 10405
MISSING_BODY = 3003
INVALID_INPUT = 5006
NO_SUCH_MODEL = 5007
TOO_LARGE = 3006
THROTTLED = 971
UPSTREAM_TIMEOUT = 3007
INTERNAL_ERROR = 3043

# Tasks whose input Cloudflare also takes as the raw request body (an image or
# an audio file instead of JSON), and the input field the body stands for.
RAW_BODY_FIELDS = {
    "automatic-speech-recognition": "audio",
    "image-classification": "image",
    "object-detection": "image",
    "image-to-text": "image",
}


def envelope_error(status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None) -> JsonResponse:
    response = JsonResponse(
        {"result": None, "success": False, "errors": errors, "messages": []}, status=status
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> JsonResponse:
    return envelope_error(status, [{"code": code, "message": message}], headers)


def bearer_key(request: HttpRequest) -> APIKey | None:
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return None
    return authenticate_api_key(raw.strip())


def submission_error(exc: SubmissionError) -> JsonResponse:
    fields = list(exc.errors)
    # Field errors are lists of messages; a refusal (budget, throttle) carries a
    # plain "detail" sentence plus scalar facts, which must not be joined as lists.
    detail = exc.errors.get("detail")
    if isinstance(detail, str):
        message = detail
    else:
        message = "; ".join(
            f"{name}: {' '.join(map(str, msgs)) if isinstance(msgs, list | tuple) else msgs}"
            for name, msgs in exc.errors.items()
        )
    if exc.status == 400:
        code = NO_SUCH_MODEL if set(fields) & {"task", "model"} else INVALID_INPUT
    else:
        code = getattr(exc, "code", None) or {413: TOO_LARGE, 429: THROTTLED}.get(exc.status, 9000 + exc.status)
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(int(retry_after))
    return error(exc.status, code, message or "Request refused", headers)


def upstream_error(exc: InferenceError) -> JsonResponse:
    """Relay an upstream error with its status and Cloudflare's own errors list."""
    timeout = isinstance(exc, UpstreamTimeoutError)
    status = exc.status_code if exc.status_code and exc.status_code >= 400 else (504 if timeout else 502)
    errors = [e for e in exc.errors if isinstance(e, dict)]
    if not errors:
        code = exc.code if exc.code is not None else (UPSTREAM_TIMEOUT if timeout else INTERNAL_ERROR)
        errors = [{"code": code, "message": exc.message}]
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(0, round(exc.retry_after)))
    return envelope_error(status, errors, headers)


def read_body(request: HttpRequest) -> bytes:
    """The request body under our own limit.  ``request.body`` would apply the
    site's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB by default) and answer an HTML
    400, where Cloudflare takes ~10 MB bodies and answers 413 in its envelope."""
    limit = max_request_bytes()  # the site-wide limit, answered in Cloudflare's envelope
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    too_big = SubmissionError({"body": [f"Request body is larger than {limit} bytes."]}, status=413)
    if declared > limit:
        raise too_big
    body = request.read(limit + 1)
    if len(body) > limit:
        raise too_big
    return body


def parse_body(body: bytes, content_type: str | None, task: str | None) -> tuple[dict[str, Any], dict[str, tuple[bytes, str | None]]]:
    """The model input: a JSON object, or (for image/audio tasks) the raw file."""
    try:
        payload = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        payload = None
        field = RAW_BODY_FIELDS.get(task or "")
        if field and "json" not in (content_type or "").lower():
            return {}, {field: (body, content_type or None)}
    if payload is None:
        raise SubmissionError({"body": ["Request body must be a JSON object."]})
    return payload, {}


@csrf_exempt
def run_model(request: HttpRequest, account_id: str, model_name: str) -> HttpResponse:
    if request.method != "POST":
        return error(405, METHOD_NOT_ALLOWED, "Method not allowed", {"Allow": "POST"})
    key = bearer_key(request)
    if key is None:
        return error(401, AUTH_ERROR, "Authentication error")
    if not inference_settings.ACCOUNT_ID or account_id != inference_settings.ACCOUNT_ID:
        return error(403, AUTH_ERROR, "Authentication error: this server does not serve that account")

    # The WSGI/ASGI server has decoded the path once (the SDK's %2F); decode a
    # name that still holds escapes, so the run and upstream see it literal.
    model = unquote(model_name) if "%" in model_name else model_name
    spec = resolve_model(model)
    try:
        body = read_body(request)
        if not body:
            return error(400, MISSING_BODY, "Bad input: request is missing a body")
        payload, uploads = parse_body(body, request.content_type, spec.task if spec else None)
        run = submit_inline(
            key.user,
            Submission(
                model=model,
                input=payload,
                uploads=uploads,
                source=Run.Source.COMPAT,
                client_ip=request.META.get("REMOTE_ADDR") or None,
            ),
            api_key=key,
        )
    except SubmissionError as exc:
        return submission_error(exc)

    response = relay(run, asgi=isinstance(request, ASGIRequest))
    # Where the call is recorded, for whoever wants to look it up later.
    response["X-CFAI-Run-Id"] = str(run.pk)
    for header, value in lifecycle_headers(resolve_model(model)).items():
        response[header] = value
    return response


def relay(run: Run, *, asgi: bool = False) -> HttpResponse:
    """Execute the run now and answer with Cloudflare's own answer."""
    try:
        execution = execute_inline(run)
    except InferenceConfigurationError:
        logger.exception("compat run %s: server misconfigured", run.pk)
        return error(500, INTERNAL_ERROR, "Server misconfigured; see its logs")
    except InferenceError as exc:
        return upstream_error(exc)
    except Exception:
        logger.exception("compat run %s failed", run.pk)
        return error(500, INTERNAL_ERROR, "Internal error")

    if execution.chunks is not None:
        chunks = execution.chunks
        if asgi:
            chunks = iterate_in_thread(chunks)  # else Django's ASGI handler buffers it whole
        response = StreamingHttpResponse(chunks, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
    elif execution.response is not None and execution.response.kind == "binary":
        binary = execution.response
        response = HttpResponse(binary.content, content_type=binary.headers.get("Content-Type") or binary.content_type)
    else:
        result = execution.response
        response = JsonResponse(
            {"result": result.result, "success": True, "errors": [], "messages": result.messages}
        )
    return response


# The request-size middleware leaves the limit to read_body (Cloudflare's envelope).
run_model.handles_own_body_limit = True  # type: ignore[attr-defined]
