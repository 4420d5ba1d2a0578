"""Admin for prices (editable, versioned), budgets (highlighted when near or at
their limit), the read-only daily rollup and the usage dashboard."""

from __future__ import annotations

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html

from ..models import Budget, Price, UsageDaily
from ..money import format_usd
from ..services import budgets
from . import charts as dashboard

PRICE_FIELDS = ("usd_per_unit", "neurons_per_unit", "per", "unit", "model")


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    list_display = ["model", "unit", "usd_per_unit", "neurons_per_unit", "per", "effective_from", "in_force"]
    list_filter = ["unit", "effective_from"]
    search_fields = ["model", "note"]
    date_hierarchy = "effective_from"

    @admin.display(boolean=True, description="in force")
    def in_force(self, obj: Price) -> bool:
        return obj.effective_from <= timezone.now()

    def save_model(self, request, obj: Price, form, change):
        # A price already in force may have been charged to runs: editing it in
        # place would rewrite history, so a change becomes a new version.
        if change and form.initial.get("effective_from") and form.initial["effective_from"] <= timezone.now():
            if any(f in form.changed_data for f in PRICE_FIELDS):
                obj.pk = None
                if obj.effective_from <= form.initial["effective_from"]:
                    obj.effective_from = timezone.now()
                obj.created_at = timezone.now()
                super().save_model(request, obj, form, False)
                self.message_user(
                    request,
                    f"Saved as a new price version effective {obj.effective_from:%Y-%m-%d %H:%M}; "
                    "the previous version stays for the runs charged at it.",
                    messages.INFO,
                )
                return
        super().save_model(request, obj, form, change)

    def has_delete_permission(self, request, obj=None):
        # Prices in force may be referenced by runs' cost_prices: never deleted.
        if obj is not None and obj.effective_from <= timezone.now():
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ["name", "scope", "period", "limit", "spent_now", "state", "active"]
    list_filter = ["period", "active"]
    search_fields = ["name", "user__username", "team__slug"]
    raw_id_fields = ["user", "team"]
    list_select_related = ["user", "team"]

    @admin.display(description="scope")
    def scope(self, obj: Budget) -> str:
        return f"user {obj.user}" if obj.user_id else f"team {obj.team}"

    @admin.display(description="limit (USD)", ordering="limit_usd")
    def limit(self, obj: Budget) -> str:
        return f"${format_usd(obj.limit_usd)}"

    def _status(self, obj: Budget):
        cache = getattr(self, "_cache", {})
        if obj.pk not in cache:
            cache[obj.pk] = budgets.status(obj)
            self._cache = cache
        return cache[obj.pk]

    @admin.display(description="spent (incl. reserved)")
    def spent_now(self, obj: Budget) -> str:
        return f"${format_usd(self._status(obj)[0])}"

    @admin.display(description="state")
    def state(self, obj: Budget):
        amount, level = self._status(obj)
        colors = {"ok": "#2e7d32", "soft": "#ef6c00", "reached": "#c62828"}
        labels = {"ok": "ok", "soft": "near limit", "reached": "limit reached"}
        return format_html(
            '<b class="budget-{}" style="color:{}">{}</b>', level, colors[level], labels[level]
        )

    def changelist_view(self, request, extra_context=None):
        self._cache = {}
        return super().changelist_view(request, extra_context)


@admin.register(UsageDaily)
class UsageDailyAdmin(admin.ModelAdmin):
    list_display = ["day", "user", "team", "model", "task", "runs", "failed", "input_tokens", "output_tokens", "usd", "estimated_runs", "unknown_cost_runs"]
    list_filter = ["day", "task", "team"]
    search_fields = ["model", "user__username", "team__slug"]
    date_hierarchy = "day"
    list_select_related = ["user", "team"]
    show_full_result_count = False

    @admin.display(description="USD", ordering="cost_usd")
    def usd(self, obj: UsageDaily) -> str:
        return format_usd(obj.cost_usd)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        extra = [path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="inference_usage_dashboard")]
        return extra + super().get_urls()

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        try:
            days = min(366, max(1, int(request.GET.get("days", 30))))
        except ValueError:
            days = 30
        context = {
            **self.admin_site.each_context(request),
            "title": "Usage dashboard",
            "d": dashboard.build(days),
            "days": days,
            "periods": [7, 30, 90, 365],
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/inference/usagedaily/dashboard.html", context)
