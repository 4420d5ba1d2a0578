"""Talking to Cloudflare for a run: which account and client, the call itself,
and turning the answer (JSON, bytes or a stream) into what is stored."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

from django.utils import timezone

from .. import catalog
from .. import redaction as scrub_logs
from ..catalog_db import resolve_model
from ..client import BinaryResult, JSONResult, RunResult, StreamResult, WorkersAIClient
from ..conf import inference_settings
from ..exceptions import (
    MissingCredentialsError,
    RunCanceled,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from ..models import CloudflareAccount, Run
from ..tasks.outputs import BinaryOutputError, extract_binary_outputs, normalize_output
from . import live, webhooks
from . import recovery as reliability
from .lifecycle import Outcome

_clients: dict[tuple, WorkersAIClient] = {}
_clients_lock = threading.Lock()


def account_for(run: Run | None = None, team=None) -> CloudflareAccount | None:
    """The team's active Cloudflare account, or None (use the environment default)."""
    team_id = team.pk if team is not None else (run.team_id if run is not None else None)
    if team_id is None:
        return None
    return CloudflareAccount.objects.filter(team_id=team_id, is_active=True).first()


def upstream_account_id(run: Run) -> str:
    """The Cloudflare account a run's calls go to (its team's, else the default):
    the key of that account's 3036 pause and of its rate-limit buckets."""
    account = account_for(run)
    return account.account_id if account is not None else str(inference_settings.ACCOUNT_ID or "")


def _secret_digest(value: str) -> str:
    # The client cache is keyed by credentials; a digest keeps the plaintext out
    # of one more long-lived structure.
    return hashlib.sha256(value.encode()).hexdigest() if value else ""


def get_client(run: Run | None = None, *, team=None) -> WorkersAIClient:
    """The client for a run (or team): the team's Cloudflare account when it has
    an active one, else the environment default.  One pooled client per
    configuration and process (connection reuse)."""
    s = inference_settings
    account = account_for(run, team)
    if account is not None:
        account_id, email = account.account_id, account.email
        api_token, api_key = account.get_api_token(), account.get_api_key()
        scrub_logs.register_secret(api_token)
        scrub_logs.register_secret(api_key)
        if not (api_token or (email and api_key)):
            raise MissingCredentialsError(
                f"Cloudflare account {account.pk} of team {account.team_id} has no credentials: "
                "set an API token (or e-mail and API key) in the admin.",
                setting="CloudflareAccount",
            )
    else:
        if not s.ACCOUNT_ID:
            raise MissingCredentialsError(
                "No Cloudflare account: set CLOUDFLARE_ACCOUNT_ID (INFERENCE['ACCOUNT_ID']).",
                setting="CLOUDFLARE_ACCOUNT_ID",
            )
        account_id, api_token, email, api_key = s.ACCOUNT_ID, s.API_TOKEN, s.EMAIL, s.API_KEY
    key = (
        account_id, _secret_digest(api_token), email, _secret_digest(api_key),
        s.BASE_URL, s.CONNECT_TIMEOUT, s.READ_TIMEOUT,
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = WorkersAIClient(
                account_id,
                api_token=api_token or None,
                email=email or None,
                api_key=api_key or None,
                base_url=s.BASE_URL,
                timeout=(float(s.CONNECT_TIMEOUT), float(s.READ_TIMEOUT)),
            )
            _clients[key] = client
    return client


def elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def call_upstream(run: Run, payload: dict[str, Any]) -> Outcome:
    return outcome_from_response(run, request_upstream(run, payload))


def request_upstream(run: Run, payload: dict[str, Any]) -> RunResult:
    """Send the run upstream and return Cloudflare's answer as it came (JSON,
    bytes or an open stream): the compatible endpoint relays it unchanged."""
    return get_client(run).run(run.model, payload, timeout=reliability.upstream_timeout(run))


def outcome_from_response(run: Run, response: RunResult) -> Outcome:
    """What is stored of an upstream answer: normalized result, usage, media."""
    if isinstance(response, StreamResult):
        return consume_stream(run, response)
    spec = resolve_model(run.model)
    output_kind = spec.output_kind if spec else catalog.OutputKind.JSON
    if isinstance(response, BinaryResult):
        # Raw bytes: the media key follows the body (aura answers audio/mpeg,
        # SDXL image/png) when the catalog does not say; never "audio/mpeg".
        if output_kind == catalog.OutputKind.JSON:
            output_kind = (
                catalog.OutputKind.AUDIO_BYTES
                if response.content_type.startswith("audio/")
                else catalog.OutputKind.PNG_BYTES
            )
        raw: Any = response.content
    else:
        assert isinstance(response, JSONResult)
        raw = response.result
    # Normalize first: it wraps a bare base64 string into {"image": …} /
    # {"audio": …}, which extract_binary_outputs then finds.
    result = normalize_output(run.task, raw)
    try:
        result, blobs = extract_binary_outputs(output_kind, result)
    except BinaryOutputError as exc:
        raise UpstreamProtocolError(f"Upstream result without the expected file: {exc}") from exc
    usage = result.get("usage") if isinstance(result, dict) else None
    return Outcome(result=result, usage=usage, media=[(b.key, b.data, b.content_type) for b in blobs])


def stream_delta(event: dict[str, Any]) -> tuple[str, list | None]:
    """The text and tool-call fragments one upstream SSE event adds (the same
    shapes StreamResult accumulates: ``response``, or OpenAI-style choices)."""
    text = ""
    response = event.get("response")
    if isinstance(response, str):
        text = response
    elif isinstance(response, int | float) and not isinstance(response, bool):
        text = str(response)
    fragments = event.get("tool_calls")
    choices = event.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta")
        if isinstance(delta, dict):
            if response is None and isinstance(delta.get("content"), str):
                text = delta["content"]
            fragments = fragments or delta.get("tool_calls")
    return text, fragments if isinstance(fragments, list) and fragments else None


def consume_stream(run: Run, stream: StreamResult) -> Outcome:
    """Read the upstream stream to its end, publishing each delta as it comes.
    Nobody listening changes nothing: the run reads on and keeps its usage.
    A lost lease (the run was canceled or taken over) or the run's deadline
    stops the read; what arrived is kept as partial text and usage."""
    throttle = webhooks.OutputThrottle(run)
    lease = reliability.current_lease()
    events = 0

    def partial() -> dict[str, Any]:
        return {"response": stream.text, "tool_calls": stream.tool_calls, "usage": stream.usage or _partial_usage(run, events)}

    with stream:
        try:
            for event in stream:
                events += 1
                if lease is not None and lease.lost.is_set():
                    # Canceled (or taken from us): stop reading; closing the
                    # stream closes the upstream connection.
                    exc = RunCanceled("Run canceled while streaming")
                    exc.partial = partial()  # type: ignore[attr-defined]
                    raise exc
                if run.deadline_at is not None and timezone.now() >= run.deadline_at:
                    exc = UpstreamTimeoutError(reliability.deadline_message(run), retryable=False)
                    exc.partial = partial()  # type: ignore[attr-defined]
                    raise exc
                text, fragments = stream_delta(event)
                if text or fragments:
                    data: dict[str, Any] = {"delta": text}
                    if fragments:
                        data["tool_calls"] = fragments
                    live.publish(run.pk, "output", data)
                    throttle.maybe_send(stream.text)
        except UpstreamProtocolError as exc:
            exc.partial = partial()  # type: ignore[attr-defined]
            raise
    result = {"response": stream.text, "tool_calls": stream.tool_calls, "usage": stream.usage}
    return Outcome(result=result, usage=stream.usage, media=[])


def _partial_usage(run: Run, events: int) -> dict[str, Any] | None:
    """Usage of a stream stopped before its final usage event: one token per event
    received is what was generated (and billed) so far."""
    if not events:
        return None
    return {"completion_tokens": events, "partial": True}
