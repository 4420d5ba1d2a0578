"""Webhook signing secrets (one per user) and the log of every delivery attempt."""

from __future__ import annotations

import base64
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from .. import crypto
from .runs import Run


def new_webhook_secret() -> str:
    # Standard Webhooks: "whsec_" + base64 of 24–64 random bytes.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookSecret(models.Model):
    """The key a user's webhook receivers verify signatures with.  The HMAC needs
    the secret itself (a digest would not do), so it is encrypted at rest with
    the same Fernet keys as team credentials (``inference.crypto``) and rotated
    with them.  Read and write it through ``secret``; a new row gets a fresh
    ``whsec_`` secret on first save."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inference_webhook_secret"
    )
    secret_ciphertext = models.TextField(
        blank=True, default="", editable=False, help_text="Encrypted signing secret (Fernet)."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "webhook secret"

    def __str__(self) -> str:
        return f"webhook secret of {self.user}"

    def save(self, *args, **kwargs) -> None:
        if not self.secret_ciphertext:
            self.secret = new_webhook_secret()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "secret_ciphertext"}
        super().save(*args, **kwargs)

    @property
    def secret(self) -> str:
        return crypto.decrypt(self.secret_ciphertext)

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_ciphertext = crypto.encrypt(value)

    @property
    def masked(self) -> str:
        return f"{self.secret[:10]}…"

    def rotate_encryption(self) -> bool:
        """Re-encrypt under the current key; True if anything changed."""
        if self.secret_ciphertext and crypto.needs_rotation(self.secret_ciphertext):
            self.secret_ciphertext = crypto.rotate(self.secret_ciphertext)
            return True
        return False


class WebhookEvent(models.TextChoices):
    START = "start", "Start"
    OUTPUT = "output", "Output"
    COMPLETED = "completed", "Completed"


class WebhookDelivery(models.Model):
    """One attempt to deliver one webhook message.  Retries of a message share
    its ``webhook_id``; the body is kept on the first attempt only (retries send
    the same bytes, re-signed with a fresh timestamp)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="webhook_deliveries")
    event = models.CharField(max_length=16, choices=WebhookEvent.choices)
    webhook_id = models.CharField(max_length=64, help_text="The webhook-id header: the same for every retry.")
    attempt = models.PositiveSmallIntegerField(default=1)
    url = models.URLField(max_length=2000)
    payload = models.TextField(blank=True, default="", help_text="Body sent (first attempt only).")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Receiver's HTTP status.")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True, default="")
    error = models.TextField(blank=True, default="")
    succeeded = models.BooleanField(null=True, blank=True, help_text="Empty while pending.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["run", "created_at"], name="inference_whd_run_created"),
            models.Index(fields=["webhook_id", "attempt"], name="inference_whd_msg_attempt"),
        ]

    def __str__(self) -> str:
        return f"{self.event} #{self.attempt} → {self.status_code or self.error[:40] or 'pending'}"
