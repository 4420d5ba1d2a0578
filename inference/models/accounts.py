"""Cloudflare accounts kept in the database, per team.  Their credentials are
encrypted at rest (``inference.crypto``) and never shown again once saved."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .. import crypto
from .runs import Team


class CloudflareAccount(models.Model):
    """A team's Cloudflare account: its runs go upstream with these credentials
    instead of the environment default.  Set credentials with ``set_credentials``;
    the ``*_ciphertext`` columns hold Fernet tokens, never plaintext."""

    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="cloudflare_accounts",
        help_text="Runs attributed to this team use this account.",
    )
    name = models.CharField(max_length=100, blank=True, default="")
    account_id = models.CharField(max_length=64, help_text="Cloudflare account id (dashboard URL).")
    email = models.EmailField(
        blank=True, default="", help_text="Legacy auth only: the account e-mail for X-Auth-Email."
    )
    token_ciphertext = models.TextField(
        blank=True, default="", editable=False, help_text="Encrypted API token (Bearer)."
    )
    api_key_ciphertext = models.TextField(
        blank=True, default="", editable=False, help_text="Encrypted legacy global API key."
    )
    is_active = models.BooleanField(
        default=True, help_text="Only one active account per team; inactive ones are kept for audit."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    credentials_changed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "Cloudflare account"
        ordering = ["team__slug", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["team"], condition=Q(is_active=True),
                name="inference_cfaccount_one_active_per_team",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name or self.account_id} ({self.team_id and self.team})"

    # -- credentials ------------------------------------------------------------------

    def set_credentials(self, *, api_token: str | None = None, api_key: str | None = None) -> None:
        """Encrypt and store; None leaves a value as it is, '' clears it."""
        if api_token is not None:
            self.token_ciphertext = crypto.encrypt(api_token)
        if api_key is not None:
            self.api_key_ciphertext = crypto.encrypt(api_key)
        self.credentials_changed_at = timezone.now()

    def get_api_token(self) -> str:
        return crypto.decrypt(self.token_ciphertext)

    def get_api_key(self) -> str:
        return crypto.decrypt(self.api_key_ciphertext)

    @property
    def auth_scheme(self) -> str:
        if self.token_ciphertext:
            return "api_token"
        if self.email and self.api_key_ciphertext:
            return "email+api_key"
        return ""

    def clean(self) -> None:
        if not self.auth_scheme:
            raise ValidationError(
                "Give an API token, or the legacy e-mail and global API key."
            )

    def rotate_encryption(self) -> bool:
        """Re-encrypt under the current key; True if anything changed."""
        changed = False
        for name in ("token_ciphertext", "api_key_ciphertext"):
            value = getattr(self, name)
            if value and crypto.needs_rotation(value):
                setattr(self, name, crypto.rotate(value))
                changed = True
        return changed
