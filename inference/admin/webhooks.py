"""Admin for webhooks: every delivery attempt inline on its run (read-only), and
each user's signing secret, shown in full only to its owner."""

from __future__ import annotations

from django.contrib import admin, messages

from ..models import WebhookDelivery, WebhookSecret
from ..services import webhooks


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    can_delete = False
    fields = ["event", "webhook_id", "attempt", "url", "succeeded", "status_code", "duration_ms",
              "response_excerpt", "error", "created_at", "completed_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookSecret)
class WebhookSecretAdmin(admin.ModelAdmin):
    list_display = ["user", "masked_secret", "created_at"]
    search_fields = ["user__username"]
    raw_id_fields = ["user"]
    actions = ["rotate"]

    # Only the owner sees the whole secret: other staff see a masked prefix and
    # can rotate it, not read it.  Chosen per request (admin instances are shared
    # between threads, so nothing request-specific is stored on self).
    def get_fields(self, request, obj=None):
        if obj is not None and request.user.pk == obj.user_id:
            return ["user", "secret", "created_at"]
        return ["user", "masked_secret", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ["masked_secret", "created_at"]
        return ["user", "secret", "masked_secret", "created_at"]

    @admin.display(description="secret")
    def masked_secret(self, obj: WebhookSecret) -> str:
        return obj.masked if obj is not None and obj.pk else "Generated on save."

    @admin.action(description="Rotate selected secrets (receivers must be updated)")
    def rotate(self, request, queryset):
        count = 0
        for secret in queryset.select_related("user"):
            webhooks.rotate_secret(secret.user)
            count += 1
        self.message_user(request, f"Rotated {count} secret(s).", messages.WARNING)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Every attempt, searchable by run or webhook-id; read-only like run history."""

    list_display = ["created_at", "run", "event", "attempt", "succeeded", "status_code", "duration_ms", "webhook_id"]
    list_filter = ["succeeded", "event", "created_at"]
    search_fields = ["webhook_id", "run__id", "url"]
    list_select_related = ["run"]
    raw_id_fields = ["run"]
    exclude = ["payload"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in WebhookDelivery._meta.fields if f.name != "payload"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
