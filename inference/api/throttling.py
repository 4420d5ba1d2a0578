"""Caller throttling: request rates per API key, counted in the default (Redis)
cache so every web process shares the counts.  DRF answers 429 with Retry-After."""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class APIKeyRateThrottle(SimpleRateThrottle):
    """``inference_key`` for every request; ``inference_submit`` in addition for
    run submissions (POST to the runs list)."""

    scope = "inference_key"
    submit_scope = "inference_submit"

    def __init__(self) -> None:  # rates are read per request (override_settings works)
        pass

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view) -> str | None:
        key = request.auth if hasattr(request.auth, "prefix") else None
        if key is not None:
            ident = f"key:{key.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return f"throttle:{self.scope}:{ident}"

    def _check(self, request, view, scope: str) -> bool:
        self.scope = scope
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def allow_request(self, request, view) -> bool:
        if not self._check(request, view, type(self).scope):
            return False
        if request.method == "POST" and getattr(view, "action", None) == "create":
            return self._check(request, view, self.submit_scope)
        return True
