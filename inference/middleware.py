"""Request-level guards that must run before any view reads the body."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from .conf import inference_settings

# Room for the non-file part of a body: prompts, metadata, multipart boundaries.
BODY_OVERHEAD = 1024 * 1024


def max_request_bytes() -> int:
    configured = inference_settings.MAX_REQUEST_BYTES
    if configured is not None:
        return int(configured)
    # One file inlined as a JSON byte array: "255, " is up to 5 characters a
    # byte, 4 on average for binary data; multipart and base64 need less.
    return 4 * int(inference_settings.MAX_UPLOAD_BYTES) + BODY_OVERHEAD


class RequestSizeLimitMiddleware:
    """Answer 413 with JSON when the declared body is over the limit, before the
    body is read.  Django's own DATA_UPLOAD_MAX_MEMORY_SIZE only covers form
    data and ``request.body``, not DRF's streaming JSON parser.

    A view marked ``handles_own_body_limit`` (the Cloudflare-compatible
    endpoint, which must answer in Cloudflare's error envelope) applies the
    same limit itself."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        if getattr(view_func, "handles_own_body_limit", False):
            return None
        limit = max_request_bytes()
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Invalid Content-Length header."}, status=400)
        if length > limit:
            return JsonResponse(
                {
                    "detail": f"Request body too large: {length} bytes (limit {limit}).",
                    "code": "request_too_large",
                    "limit": limit,
                },
                status=413,
            )
        return None
