"""Thread-safe mutable state shared by every request the emulator serves.

Kept apart from the HTTP plumbing so that the Python API (``EmulatorServer``) and the
``/_emulator/`` control endpoints act on the very same objects.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from inference.catalog import TASKS, ModelSpec, OutputKind, Task, get_model

from .faults import FaultQueue, MarkerCounter

REQUEST_LOG_LIMIT = 10_000  # soak tests make many requests: keep memory bounded
BODY_LOG_LIMIT = 2048

# Output kind of a runtime-registered model when the caller names only its task:
# text-to-image → raw PNG and text-to-speech → base64 MP3, the common upstream forms.
_DEFAULT_KIND = {
    Task.TEXT_TO_IMAGE.value: OutputKind.PNG_BYTES,
    Task.TEXT_TO_SPEECH.value: OutputKind.BASE64_AUDIO,
}


def make_extra_model(name: str, definition: str | Mapping[str, Any]) -> ModelSpec:
    """A ModelSpec for a model outside the catalog.

    ``definition`` is a task slug, or ``{"task", "output_kind"?, "audio_input"?}``.
    """
    if isinstance(definition, str):
        definition = {"task": definition}
    if not isinstance(definition, Mapping):
        raise ValueError(f"model {name!r}: expected a task slug or an object")
    task = definition.get("task")
    if task not in TASKS:
        raise ValueError(f"model {name!r}: unknown task {task!r}")
    kind = definition.get("output_kind")
    try:
        output_kind = OutputKind(kind) if kind else _DEFAULT_KIND.get(task, OutputKind.JSON)
    except ValueError:
        raise ValueError(f"model {name!r}: unknown output_kind {kind!r}") from None
    return ModelSpec(
        name=name,
        task=task,
        output_kind=output_kind,
        streams=task == Task.TEXT_GENERATION.value,
        audio_input=str(definition.get("audio_input", "uint8")),
    )


@dataclass
class EmulatorConfig:
    latency_ms: int = 0  # added to every run response: simulated upstream time
    token_delay_ms: int = 0  # pause between streamed token events
    image_noise: bool = False
    models: dict[str, ModelSpec] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "token_delay_ms": self.token_delay_ms,
            "image_noise": self.image_noise,
            "models": {
                name: {"task": str(spec.task), "output_kind": spec.output_kind.value, "audio_input": spec.audio_input}
                for name, spec in self.models.items()
            },
        }


def _non_negative_int(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer") from None
    if number < 0:
        raise ValueError(f"{name} must be >= 0")
    return number


class EmulatorState:
    def __init__(
        self,
        *,
        config: EmulatorConfig,
        tokens: Iterable[str] | None,
        legacy_credentials: tuple[str, str] | None,
        account_ids: Iterable[str] | None,
    ) -> None:
        self._lock = threading.Lock()
        self._initial = replace(config, models=dict(config.models))
        self._config = replace(config, models=dict(config.models))
        self.tokens = frozenset(tokens) if tokens is not None else None
        self.legacy_credentials = tuple(legacy_credentials) if legacy_credentials is not None else None
        self.account_ids = frozenset(account_ids) if account_ids is not None else None
        self.faults = FaultQueue()
        self.markers = MarkerCounter()
        self._log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_LIMIT)
        self._total = 0
        # Bumped by reset(): a request that arrived before a reset (a slow answer
        # still being written for the previous test) is not logged after it.
        self._epoch = 0
        self._by_model: Counter[str] = Counter()
        self._by_status: Counter[str] = Counter()
        self._faults_injected: Counter[str] = Counter()

    # ------------------------------------------------------------------ config

    @property
    def config(self) -> EmulatorConfig:
        """A snapshot: callers never see a half-applied update."""
        with self._lock:
            return replace(self._config, models=dict(self._config.models))

    def update_config(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply ``changes`` (the JSON of ``POST /_emulator/config``); ValueError if invalid."""
        unknown = set(changes) - {"latency_ms", "token_delay_ms", "image_noise", "models"}
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        updates: dict[str, Any] = {}
        for name in ("latency_ms", "token_delay_ms"):
            if changes.get(name) is not None:
                updates[name] = _non_negative_int(changes[name], name)
        if changes.get("image_noise") is not None:
            updates["image_noise"] = bool(changes["image_noise"])
        models = changes.get("models")
        if models is not None:
            if not isinstance(models, Mapping):
                raise ValueError("models must map model names to task slugs")
            updates["models"] = {name: make_extra_model(name, d) for name, d in models.items()}
        with self._lock:
            if "models" in updates:
                updates["models"] = {**self._config.models, **updates["models"]}
            self._config = replace(self._config, **updates)
            return self._config.to_dict()

    def lookup(self, model: str) -> ModelSpec | None:
        """Runtime-registered models first (they may shadow the catalog), then the catalog."""
        with self._lock:
            extra = self._config.models.get(model)
        return extra or get_model(model)

    # ------------------------------------------------------------------ auth

    def authenticate(self, headers: Mapping[str, str]) -> str | None:
        """``"bearer"``, ``"legacy"`` or None (rejected).

        Bearer: any non-empty token when ``tokens`` is None, else one of ``tokens``.
        Legacy pair: the configured pair; with none configured, any non-empty pair but
        only while the emulator is fully open (``tokens`` also None) so that a test
        restricting tokens cannot be bypassed through the legacy headers.
        """
        authorization = headers.get("Authorization") or ""
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            return "bearer" if self.tokens is None or token in self.tokens else None
        email = (headers.get("X-Auth-Email") or "").strip()
        key = (headers.get("X-Auth-Key") or "").strip()
        if email and key:
            if self.legacy_credentials is not None:
                return "legacy" if (email, key) == self.legacy_credentials else None
            return "legacy" if self.tokens is None else None
        return None

    def account_allowed(self, account_id: str) -> bool:
        return self.account_ids is None or account_id in self.account_ids

    # ------------------------------------------------------------------ request log

    def record(
        self,
        *,
        model: str,
        account_id: str,
        gateway_id: str | None,
        auth: str | None,
        status: int | None,
        stream: bool,
        fault: str | None,
        body: bytes,
        epoch: int | None = None,
    ) -> None:
        entry = {
            "model": model,
            "account_id": account_id,
            "gateway_id": gateway_id,
            "auth": auth,
            "status": status,
            "stream": stream,
            "fault": fault,
            "ts": time.time(),
            "body": body[:BODY_LOG_LIMIT * 4].decode("utf-8", errors="replace")[:BODY_LOG_LIMIT],
        }
        with self._lock:
            if epoch is not None and epoch != self._epoch:
                return
            self._log.append(entry)
            self._total += 1
            self._by_model[model] += 1
            self._by_status[str(status) if status is not None else "dropped"] += 1
            if fault:
                self._faults_injected[fault] += 1

    def epoch(self) -> int:
        """The current log generation: pass it back to ``record`` (see ``reset``)."""
        with self._lock:
            return self._epoch

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._log]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._total,
                "by_model": dict(self._by_model),
                "by_status": dict(self._by_status),
                "faults_injected": dict(self._faults_injected),
                "pending_faults": len(self.faults.pending()),
            }

    def reset(self) -> None:
        """Faults, markers, log, counters and config back to the constructor's."""
        self.faults.clear()
        self.markers.clear()
        with self._lock:
            self._config = replace(self._initial, models=dict(self._initial.models))
            self._log.clear()
            self._epoch += 1
            self._total = 0
            self._by_model.clear()
            self._by_status.clear()
            self._faults_injected.clear()
