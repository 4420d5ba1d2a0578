"""One error tree for everything that can go wrong talking to Workers AI.

``InferenceError`` is the root of runtime failures; each carries the HTTP status,
the Cloudflare error code (when there is one), a readable message and whether a
retry can help.  Configuration errors deliberately live outside the root
(they subclass Django's ``ImproperlyConfigured``) so a broad ``except
InferenceError`` never swallows a missing credential.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ImproperlyConfigured

# Cloudflare codes that a retry can fix (cloudflare-facts.md, "Error codes").
# Closed list: anything not named here is not retried (except 5xx, timeouts and
# connection failures, which are transport-level and handled by class).
RETRYABLE_CODES = frozenset({3040, 3007, 3008})
# Daily free allocation exhausted: retrying before 00:00 UTC only burns calls.
QUOTA_CODES = frozenset({3036, 4006})


class InferenceError(Exception):
    """Root of runtime errors (upstream faults, protocol problems, refusals)."""

    default_message = "Inference error"
    default_retryable = False

    def __init__(
        self,
        message: str | None = None,
        *,
        status_code: int | None = None,
        code: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        body: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.status_code = status_code
        self.code = code
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        # An excerpt of the upstream body, for debugging; never the request.
        self.body = body[:2000] if body else body
        self.errors = errors or []
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.append(f"(code {self.code})")
        if self.status_code is not None:
            parts.append(f"[HTTP {self.status_code}]")
        return " ".join(parts)


class UpstreamError(InferenceError):
    """Cloudflare answered with an error (non-2xx, or ``success: false``)."""

    default_message = "Workers AI returned an error"


class RateLimitedError(UpstreamError):
    """429 with a retryable code (3040 out of capacity, or none)."""

    default_message = "Workers AI is out of capacity, try again"
    default_retryable = True


class QuotaExceededError(UpstreamError):
    """429 with 3036/4006: the account's daily free allocation is used up."""

    default_message = "Daily free allocation of Workers AI used up; it resets at 00:00 UTC"
    default_retryable = False


class UpstreamServerError(UpstreamError):
    """5xx from Cloudflare."""

    default_message = "Workers AI server error"
    default_retryable = True


class UpstreamTimeoutError(UpstreamError):
    """The request timed out (ours, or Cloudflare's 3007/3008 408)."""

    default_message = "Workers AI request timed out"
    default_retryable = True


class UpstreamConnectionError(UpstreamError):
    """Could not connect, or the connection dropped before a response."""

    default_message = "Could not reach Workers AI"
    default_retryable = True


class UpstreamProtocolError(UpstreamError):
    """The upstream answered something we cannot read: invalid JSON, a stream
    cut short, an envelope without ``result``.  Not retried: the call may have
    been billed upstream, and garbage rarely heals itself."""

    default_message = "Workers AI returned an unreadable response"


class RunCanceled(InferenceError):
    """The run was canceled while it was executing."""

    default_message = "Run canceled"


class InferenceConfigurationError(ImproperlyConfigured):
    """Misconfiguration (missing credentials, bad settings).  Outside the root on
    purpose: it must never be retried or swallowed as an upstream fault."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        self.setting = setting
        super().__init__(message)


class MissingCredentialsError(InferenceConfigurationError):
    pass


def error_for_status(
    status_code: int,
    code: int | None,
    message: str,
    *,
    retry_after: float | None = None,
    body: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> UpstreamError:
    """Map an upstream HTTP status + Cloudflare code to the right exception.

    The retry decision is made here and only here (cloudflare-facts.md's table).
    """
    kwargs: dict[str, Any] = {
        "status_code": status_code,
        "code": code,
        "retry_after": retry_after,
        "body": body,
        "errors": errors,
    }
    if code in QUOTA_CODES:
        return QuotaExceededError(message, **kwargs)
    if status_code == 429:
        # 429 without a quota code is a capacity problem: retry with backoff.
        return RateLimitedError(message, **kwargs)
    if status_code == 408 or code in (3007, 3008):
        return UpstreamTimeoutError(message, **kwargs)
    if status_code >= 500:
        return UpstreamServerError(message, **kwargs)
    return UpstreamError(message, retryable=code in RETRYABLE_CODES, **kwargs)


class DecryptionError(InferenceConfigurationError):
    """A stored value cannot be decrypted with any configured key.  A
    configuration error (outside the InferenceError root): a key was removed
    from ENCRYPTION_KEYS before the values it encrypted were rotated."""


# --- Refusals and run-state errors (raised by services, mapped by the API) -------


class SubmissionError(Exception):
    """A submission refused before anything was stored.  ``errors`` maps field
    paths to messages (DRF's shape); ``status`` is the HTTP status to answer."""

    def __init__(self, errors: dict[str, list[str]], status: int = 400) -> None:
        self.errors = errors
        self.status = status
        super().__init__(json.dumps(errors))


class AlreadyFinished(Exception):
    """A cancel (or another state change) asked of a run already finished."""


class DeadlineExceeded(Exception):
    """The run's overall deadline passed before (or while) calling upstream."""


class WebhookTargetError(ValueError):
    """The webhook URL may not be called (bad scheme, unresolvable, or non-public)."""
