"""Run webhooks: target checks (SSRF), Standard Webhooks signing, delivery with
retries.  The submit/execute services call ``check_target`` and ``dispatch``;
the Celery job calls ``deliver`` with a delivery id only."""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from django.db import IntegrityError, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from .. import __version__ as _version
from ..conf import inference_settings
from ..exceptions import WebhookTargetError
from ..models import (
    Run,
    WebhookDelivery,
    WebhookEvent,
    WebhookSecret,
)
from ..queue import enqueue_webhook
from ..serializers import RunSerializer

logger = logging.getLogger(__name__)

EVENTS = tuple(WebhookEvent.values)
EXCERPT_CHARS = 500
# Receivers answering these are worth another try; any other 4xx (and 3xx: we
# never follow redirects) will answer the same again.
RETRYABLE_STATUSES = {408, 409, 425, 429}


# --- Target checks --------------------------------------------------------------


def _allowed(host: str, addresses: list[ipaddress._BaseAddress]) -> tuple[bool, bool]:
    """(host allowed by name, set of addresses allowed) from WEBHOOK_ALLOWED_HOSTS."""
    entries = [str(e).strip().lower() for e in inference_settings.WEBHOOK_ALLOWED_HOSTS or []]
    if host.lower() in entries:
        return True, True
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    return False, bool(addresses) and all(any(a in n for n in networks) for a in addresses)


def _public(address: ipaddress._BaseAddress) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    # is_global is False for loopback, RFC 1918, link-local (169.254.0.0/16: the
    # cloud metadata address), CGNAT (100.64/10: another metadata range),
    # unique-local IPv6, documentation and reserved ranges.
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int) -> list[ipaddress._BaseAddress]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def check_target(url: str) -> None:
    """Raise WebhookTargetError unless ``url`` is an http(s) URL whose host
    resolves only to public addresses (or is on the allow-list)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise WebhookTargetError("Webhook URL must use http or https.")
    host = parts.hostname
    if not host:
        raise WebhookTargetError("Webhook URL has no host.")
    if parts.username or parts.password:
        raise WebhookTargetError("Webhook URL must not carry credentials.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise WebhookTargetError("Webhook URL has an invalid port.") from exc
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise WebhookTargetError(f"Webhook host {host!r} does not resolve.") from exc
    by_name, by_address = _allowed(host, addresses)
    if by_name or by_address:
        return
    blocked = sorted({str(a) for a in addresses if not _public(a)})
    if blocked:
        raise WebhookTargetError(
            f"Webhook host {host!r} resolves to a non-public address ({', '.join(blocked)}): "
            "loopback, private, link-local and metadata targets are refused."
        )


# --- Secrets and signing --------------------------------------------------------


def secret_for(user) -> WebhookSecret:
    secret, _ = WebhookSecret.objects.get_or_create(user=user)
    return secret


def rotate_secret(user) -> WebhookSecret:
    from ..models import new_webhook_secret

    secret = secret_for(user)
    secret.secret = new_webhook_secret()
    secret.created_at = timezone.now()
    secret.save(update_fields=["secret_ciphertext", "created_at"])
    return secret


def sign_headers(secret: str, webhook_id: str, body: str, at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(tz=UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body),
    }


# --- Dispatch ---------------------------------------------------------------------


def wants(run: Run, event: str) -> bool:
    return bool(run.webhook) and event in (run.webhook_events or [])


def build_payload(run: Run, event: str, result_override: Any = None) -> str:
    data = RunSerializer(run).data
    if result_override is not None:
        data = {**data, "result": result_override}
    body = {"type": f"run.{event}", "created_at": timezone.now().isoformat(), "data": data}
    return json.dumps(body, default=str, separators=(",", ":"))


def dispatch(run_id, event: str, result_override: Any = None) -> WebhookDelivery | None:
    """Record the first attempt of a message and queue its delivery, if the run
    asked for this event.  Called after the transition it reports is committed."""
    run = Run.objects.select_related("user", "team").filter(pk=run_id).first()
    if run is None or not wants(run, event):
        return None
    delivery = WebhookDelivery.objects.create(
        run=run, event=event, webhook_id=f"msg_{uuid.uuid4().hex}", attempt=1, url=run.webhook,
        payload=build_payload(run, event, result_override),
    )
    enqueue(delivery.pk)
    return delivery


def dispatch_on_commit(run_id, event: str) -> None:
    transaction.on_commit(lambda: _safe_dispatch(run_id, event))


def _safe_dispatch(run_id, event: str, result_override: Any = None) -> None:
    # A webhook problem must never fail the run it reports on.
    try:
        dispatch(run_id, event, result_override)
    except Exception:
        logger.exception("run %s: webhook %s not dispatched", run_id, event)


def enqueue(delivery_id: int, countdown: float | None = None) -> None:
    enqueue_webhook(delivery_id, countdown)


class OutputThrottle:
    """Decides when a streamed run sends its next "output" webhook."""

    def __init__(self, run: Run) -> None:
        self.enabled = wants(run, WebhookEvent.OUTPUT)
        self.run_id = run.pk
        self.last = 0.0

    def maybe_send(self, text_so_far: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < float(inference_settings.WEBHOOK_OUTPUT_INTERVAL):
            return
        self.last = now
        _safe_dispatch(self.run_id, WebhookEvent.OUTPUT, {"response": text_so_far, "partial": True})


# --- Delivery ---------------------------------------------------------------------


def backoff(attempt: int) -> float:
    cap = min(
        float(inference_settings.WEBHOOK_BACKOFF_MAX),
        float(inference_settings.WEBHOOK_BACKOFF_BASE) * (2 ** (attempt - 1)),
    )
    return random.uniform(cap / 2, cap)


def _body(delivery: WebhookDelivery) -> str:
    if delivery.attempt == 1:
        return delivery.payload
    return (
        WebhookDelivery.objects.filter(webhook_id=delivery.webhook_id, attempt=1)
        .values_list("payload", flat=True)
        .first()
        or ""
    )


def deliver(delivery_id: int) -> None:
    """Make one attempt; on a retryable failure record the next attempt (same
    webhook-id) and queue it with backoff."""
    claimed = WebhookDelivery.objects.filter(pk=delivery_id, started_at__isnull=True).update(
        started_at=timezone.now()
    )
    if not claimed:
        return  # a duplicate message: this attempt was already made
    delivery = WebhookDelivery.objects.select_related("run__user").filter(pk=delivery_id).first()
    if delivery is None:
        return  # purged with its run since it was claimed
    body = _body(delivery)
    started = time.monotonic()
    status_code: int | None = None
    excerpt = ""
    error = ""
    retryable = False
    try:
        # Checked again here: DNS may have changed since submission (rebinding).
        check_target(delivery.url)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"cfai-webhooks/{_version}",
            **sign_headers(secret_for(delivery.run.user).secret, delivery.webhook_id, body),
        }
        with requests.Session() as session:
            session.trust_env = False  # never route through an environment proxy
            response = session.post(
                delivery.url, data=body.encode(), headers=headers,
                timeout=float(inference_settings.WEBHOOK_TIMEOUT), allow_redirects=False, stream=True,
            )
            try:
                status_code = response.status_code
                raw = response.raw.read(EXCERPT_CHARS * 4, decode_content=True) or b""
                excerpt = raw.decode("utf-8", "replace")[:EXCERPT_CHARS]
            finally:
                response.close()
        if 300 <= status_code < 400:
            error = f"Redirect ({status_code}) not followed."
        elif not 200 <= status_code < 300:
            error = f"Receiver answered HTTP {status_code}."
            retryable = status_code >= 500 or status_code in RETRYABLE_STATUSES
    except WebhookTargetError as exc:
        error = str(exc)
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        retryable = True
    succeeded = status_code is not None and 200 <= status_code < 300
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status_code=status_code, duration_ms=int((time.monotonic() - started) * 1000),
        response_excerpt=excerpt, error=error, succeeded=succeeded, completed_at=timezone.now(),
    )
    if succeeded or not retryable:
        return
    if delivery.attempt >= int(inference_settings.WEBHOOK_MAX_ATTEMPTS):
        logger.warning("webhook %s: giving up after %s attempts", delivery.webhook_id, delivery.attempt)
        return
    try:
        with transaction.atomic():  # the FK is checked at commit
            following = WebhookDelivery.objects.create(
                run_id=delivery.run_id, event=delivery.event, webhook_id=delivery.webhook_id,
                attempt=delivery.attempt + 1, url=delivery.url,
            )
    except IntegrityError:
        # The run was purged while this attempt was in flight: nothing to retry for.
        logger.info("webhook %s: run %s purged; no retry", delivery.webhook_id, delivery.run_id)
        return
    enqueue(following.pk, countdown=backoff(delivery.attempt))
