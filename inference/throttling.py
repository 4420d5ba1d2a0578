"""Caller throttling: request rates per API key, counted in the default (Redis)
cache so every web process shares the counts.  DRF answers 429 with Retry-After."""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class APIKeyRateThrottle(SimpleRateThrottle):
    """``inference_key`` for every request; ``inference_submit`` in addition for
    run submissions (POST to the runs list).

    DRF's sliding-window log, but both scopes read in one ``get_many`` and the
    admitted ones written in one ``set_many``: two cache round trips a request
    instead of four (each of Django's Redis cache calls also builds a client)."""

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

    def allow_request(self, request, view) -> bool:
        scopes = [type(self).scope]
        if request.method == "POST" and getattr(view, "action", None) == "create":
            scopes.append(self.submit_scope)
        checks = []  # (scope, cache key, rate) for the scopes with a rate
        for scope in scopes:
            self.scope = scope
            rate = self.get_rate()
            if rate is not None:
                checks.append((scope, self.get_cache_key(request, view), rate))
        if not checks:
            return True
        stored = self.cache.get_many([key for _scope, key, _rate in checks])
        self.now = self.timer()
        admitted: dict[str, list[float]] = {}
        allowed = True
        # In order, as DRF's throttles would run: the per-key count is taken
        # even when the submission scope then refuses.
        for scope, key, rate in checks:
            self.scope, self.key, self.rate = scope, key, rate
            self.num_requests, self.duration = self.parse_rate(rate)
            history = list(stored.get(key) or [])
            while history and history[-1] <= self.now - self.duration:
                history.pop()
            self.history = history
            if len(history) >= self.num_requests:
                allowed = False  # self.history/duration/num_requests feed wait()
                break
            history.insert(0, self.now)
            admitted[key] = history
        if admitted:
            # Every scope of one request has the same duration unit in practice;
            # each key keeps its own window as its timeout.
            durations = {key: self.parse_rate(rate)[1] for _scope, key, rate in checks}
            if len(set(durations[k] for k in admitted)) == 1:
                self.cache.set_many(admitted, durations[next(iter(admitted))])
            else:
                for key, history in admitted.items():
                    self.cache.set(key, history, durations[key])
        return allowed
