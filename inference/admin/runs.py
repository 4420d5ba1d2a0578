from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from ..exceptions import AlreadyFinished
from ..models import (
    APIKey,
    CatalogModel,
    CloudflareAccount,
    Run,
    RunMedia,
    Team,
    TeamMembership,
)
from ..services.access import create_api_key, rotate_credentials, visible_runs
from ..services.lifecycle import cancel_run
from ..services.media import media_url
from .changelist import CappedCountPaginator, TaskListFilter, fast_dates
from .webhooks import WebhookDeliveryInline


class TeamMembershipInline(admin.TabularInline):
    model = TeamMembership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [TeamMembershipInline]


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "team", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["team", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    raw_id_fields = ["user", "team"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, raw = create_api_key(obj.user, name=obj.name, team=obj.team)
        obj.pk = key.pk
        obj.prefix, obj.hashed_key, obj.created_at = key.prefix, key.hashed_key, key.created_at
        # Shown exactly once; only the digest is stored.
        self.message_user(request, f"New API key (copy it now, it will not be shown again): {raw}", messages.WARNING)

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        from django.utils import timezone

        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).")


class RunMediaInline(admin.TabularInline):
    model = RunMedia
    extra = 0
    can_delete = False
    fields = ["role", "field", "content_type", "size", "sha256", "link"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="file")
    def link(self, obj):
        return format_html('<a href="{}">download</a>', media_url(obj))


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "user", "team", "model", "task", "status_badge", "attempts", "upstream_ms"]
    list_filter = ["status", TaskListFilter, "source", "created_at", "team"]
    search_fields = ["id", "model", "user__username", "metadata", "error_message"]
    list_select_related = ["user", "team"]
    date_hierarchy = "created_at"
    raw_id_fields = ["user", "team", "api_key"]
    inlines = [RunMediaInline, WebhookDeliveryInline]
    actions = ["cancel_runs"]
    show_full_result_count = False
    # Fast at a million runs (inference/admin_perf.py; measured by bench/usage_bench.py).
    paginator = CappedCountPaginator
    list_per_page = 50

    fieldsets = [
        ("Summary", {"fields": ["id", "status", "model", "task", "stream", "user", "team", "api_key", "source", "client_ip", "attempts"]}),
        ("Timing", {"fields": ["created_at", "started_at", "completed_at", "queue_ms", "upstream_ms", "deadline_at"]}),
        ("Input", {"fields": ["input", "metadata", "webhook", "webhook_events", "idempotency_key"]}),
        ("Result", {"fields": ["result", "usage", "error_code", "error_message", "error_retryable"]}),
        ("Cost", {"fields": ["cost_usd", "cost_neurons", "cost_estimated", "cost_reason", "cost_prices", "reserved_usd"]}),
    ]

    def get_queryset(self, request):
        # The one visibility rule (visible_runs); the admin is staff-only,
        # so today this is every run, but the rule stays in one place.
        return fast_dates(visible_runs(request.user))

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Run._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        colors = {"succeeded": "#2e7d32", "failed": "#c62828", "canceled": "#6d6d6d", "running": "#1565c0", "queued": "#ef6c00"}
        return format_html('<b style="color:{}">{}</b>', colors.get(obj.status, "#000"), obj.status)

    @admin.action(description="Cancel selected runs that are not finished", permissions=["view"])
    def cancel_runs(self, request, queryset):
        canceled = 0
        for run in queryset.exclude(status__in=["succeeded", "failed", "canceled"]):
            try:
                cancel_run(run)
                canceled += 1
            except AlreadyFinished:
                pass
        self.message_user(request, f"Canceled {canceled} run(s).")


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):
    """Read-only: rows come from ``inference_sync_models``, not from hand edits."""

    list_display = ["name", "task", "output_kind", "source", "beta", "synced_at"]
    list_filter = ["task", "source", "beta"]
    search_fields = ["name", "description"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class CloudflareAccountForm(forms.ModelForm):
    """Credentials are write-only: the form never renders a stored value, and a
    blank field keeps what is stored."""

    api_token = forms.CharField(
        label="API token", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave blank to keep the stored token.",
    )
    api_key = forms.CharField(
        label="Global API key (legacy)", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only, with the e-mail above. Leave blank to keep the stored key.",
    )
    clear_credentials = forms.BooleanField(
        required=False, help_text="Erase the stored token and key (then give new ones)."
    )

    class Meta:
        model = CloudflareAccount
        fields = ["team", "name", "account_id", "email", "is_active"]

    def clean(self):
        data = super().clean()
        instance = self.instance
        token = data.get("api_token") or None
        key = data.get("api_key") or None
        if data.get("clear_credentials"):
            instance.token_ciphertext = instance.api_key_ciphertext = ""
        instance.email = data.get("email", "")
        instance.set_credentials(api_token=token, api_key=key)
        if not instance.auth_scheme:
            raise forms.ValidationError(
                "Give an API token, or the legacy e-mail and global API key."
            )
        return data


@admin.register(CloudflareAccount)
class CloudflareAccountAdmin(admin.ModelAdmin):
    form = CloudflareAccountForm
    list_display = ["__str__", "team", "account_id", "auth_scheme", "is_active", "credentials_changed_at"]
    list_filter = ["is_active", "team"]
    search_fields = ["name", "account_id", "team__slug"]
    raw_id_fields = ["team"]
    readonly_fields = ["auth_scheme", "created_at", "updated_at", "credentials_changed_at"]
    actions = ["rotate_encryption"]

    @admin.display(description="credentials")
    def auth_scheme(self, obj):
        return obj.auth_scheme or "none"

    @admin.action(description="Re-encrypt credentials with the current encryption key")
    def rotate_encryption(self, request, queryset):
        changed = rotate_credentials(queryset)
        self.message_user(request, f"Re-encrypted {changed} account(s).")


from . import billing  # noqa: E402,F401  (prices, budgets, usage, dashboard)
