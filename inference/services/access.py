"""Who may do what: API keys (create, authenticate, revoke), re-encryption of
stored credentials, and the one visibility rule for runs, media and usage."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from ..conf import inference_settings
from ..models import APIKey, CloudflareAccount, Run, RunMedia, TeamMembership, WebhookSecret


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(user, *, name: str = "", team=None) -> tuple[APIKey, str]:
    """Create a key; the plaintext is returned once and never stored."""
    prefix = secrets.token_hex(4)
    raw = f"{inference_settings.API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = APIKey.objects.create(
        user=user, team=team, name=name, prefix=prefix, hashed_key=_digest(raw)
    )
    return key, raw


# Writing last_used_at on every request costs a write per call; once a minute is
# plenty for an audit column.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def authenticate_api_key(raw: str) -> APIKey | None:
    parts = raw.split("_")
    if len(parts) < 3 or parts[0] != inference_settings.API_KEY_PREFIX:
        return None
    key = (
        APIKey.objects.select_related("user", "team")
        .filter(prefix=parts[1], revoked_at__isnull=True)
        .first()
    )
    if key is None or not hmac.compare_digest(key.hashed_key, _digest(raw)):
        return None
    if not key.user.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def revoke_api_key(key: APIKey) -> None:
    """Revoke at once: the next request with the key is refused (no cache)."""
    APIKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def rotate_credentials(
    accounts: QuerySet[CloudflareAccount] | None = None,
    webhook_secrets: QuerySet[WebhookSecret] | None = None,
) -> int:
    """Re-encrypt stored secrets under the current (first) key: Cloudflare
    credentials and webhook signing secrets.  With no argument, all of both;
    with one queryset, only those rows.  Returns how many rows changed.
    Row-locked so a concurrent edit (or a secret rotation) is not lost."""
    if accounts is None and webhook_secrets is None:
        accounts, webhook_secrets = CloudflareAccount.objects.all(), WebhookSecret.objects.all()
    changed = 0
    for pk in list(accounts.values_list("pk", flat=True)) if accounts is not None else []:
        with transaction.atomic():
            account = CloudflareAccount.objects.select_for_update().get(pk=pk)
            if account.rotate_encryption():
                account.save(update_fields=["token_ciphertext", "api_key_ciphertext", "updated_at"])
                changed += 1
    for pk in list(webhook_secrets.values_list("pk", flat=True)) if webhook_secrets is not None else []:
        with transaction.atomic():
            secret = WebhookSecret.objects.select_for_update().get(pk=pk)
            if secret.rotate_encryption():
                secret.save(update_fields=["secret_ciphertext"])
                changed += 1
    return changed


# --- Scoping --------------------------------------------------------------------


def visible_runs(user) -> QuerySet[Run]:
    """Runs the user may see: their own, their teams' where they are a team
    admin, everything for staff.  The same rule for API, events, media and admin."""
    runs = Run.objects.all()
    if user.is_staff:
        return runs
    admin_teams = TeamMembership.objects.filter(
        user=user, role=TeamMembership.Role.ADMIN
    ).values("team_id")
    return runs.filter(Q(user=user) | Q(team_id__in=admin_teams))


def visible_media(user) -> QuerySet[RunMedia]:
    return RunMedia.objects.filter(run__in=visible_runs(user)).select_related("run")
