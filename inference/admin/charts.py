"""The usage dashboard's data and charts, drawn server-side as SVG (no script,
no CDN): cost per day stacked by model, top users and teams, failure rate.
Reads only the daily rollup, so it stays fast with millions of runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from ..models import UsageDaily
from ..money import format_usd

PALETTE = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#9e9d24", "#757575"]
TOP_MODELS = 7


@dataclass
class Dashboard:
    since: date
    until: date
    total_usd: Decimal
    runs: int
    failed: int
    unknown_cost_runs: int
    cost_chart: SafeString
    users_chart: SafeString
    teams_chart: SafeString
    failure_chart: SafeString
    legend: list[tuple[str, str]]

    @property
    def failure_rate(self) -> float:
        return self.failed / self.runs if self.runs else 0.0

    @property
    def total_usd_text(self) -> str:
        return format_usd(self.total_usd)


def build(days: int = 30, today: date | None = None) -> Dashboard:
    until = today or timezone.localdate()
    since = until - timedelta(days=days - 1)
    rows = UsageDaily.objects.filter(day__gte=since, day__lte=until)
    totals = rows.aggregate(usd=Sum("cost_usd"), runs=Sum("runs"), failed=Sum("failed"), unknown=Sum("unknown_cost_runs"))
    day_list = [since + timedelta(days=i) for i in range(days)]

    by_model = list(rows.values("model").annotate(usd=Sum("cost_usd")).order_by("-usd", "model"))
    top = [r["model"] for r in by_model[:TOP_MODELS]]
    stacks: dict[date, dict[str, Decimal]] = {d: {} for d in day_list}
    for r in rows.values("day", "model").annotate(usd=Sum("cost_usd")):
        name = r["model"] if r["model"] in top else "other"
        stacks[r["day"]][name] = stacks[r["day"]].get(name, Decimal(0)) + (r["usd"] or 0)
    series = top + (["other"] if len(by_model) > TOP_MODELS else [])
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}

    failures = {r["day"]: (r["runs"], r["failed"]) for r in rows.values("day").annotate(runs=Sum("runs"), failed=Sum("failed"))}
    users = [(r["user__username"], r["usd"] or 0) for r in rows.values("user__username").annotate(usd=Sum("cost_usd")).order_by("-usd")[:10]]
    teams = [(r["team__slug"] or "(no team)", r["usd"] or 0) for r in rows.values("team__slug").annotate(usd=Sum("cost_usd")).order_by("-usd")[:10]]

    return Dashboard(
        since=since, until=until,
        total_usd=totals["usd"] or Decimal(0), runs=totals["runs"] or 0, failed=totals["failed"] or 0,
        unknown_cost_runs=totals["unknown"] or 0,
        cost_chart=stacked_bars(day_list, stacks, series, colors),
        users_chart=hbars(users, "#1565c0"),
        teams_chart=hbars(teams, "#2e7d32"),
        failure_chart=line(day_list, failures),
        legend=[(name, colors[name]) for name in series],
    )


W, H, PAD_L, PAD_B, PAD_T = 760, 260, 70, 40, 10


def stacked_bars(days: list[date], stacks: dict[date, dict[str, Decimal]], series: list[str], colors: dict[str, str]) -> SafeString:
    peak = max((sum(s.values()) for s in stacks.values()), default=Decimal(0)) or Decimal(1)
    plot_w, plot_h = W - PAD_L - 10, H - PAD_B - PAD_T
    slot = plot_w / max(1, len(days))
    parts = [_axes(peak, "$")]
    for i, day in enumerate(days):
        y = PAD_T + plot_h
        for name in series:
            usd = stacks[day].get(name)
            if not usd:
                continue
            h = float(usd / peak) * plot_h
            y -= h
            parts.append(
                f'<rect class="bar" x="{PAD_L + i * slot + 1:.1f}" y="{y:.1f}" width="{max(1.0, slot - 2):.1f}" '
                f'height="{max(h, 0.5):.1f}" fill="{colors[name]}" data-day="{day}" data-model="{escape(name)}" '
                f'data-usd="{format_usd(usd)}"><title>{day} {escape(name)}: ${format_usd(usd)}</title></rect>'
            )
        if i % max(1, len(days) // 6) == 0:
            parts.append(f'<text x="{PAD_L + i * slot:.1f}" y="{H - 20}" font-size="11">{day:%b %d}</text>')
    return _svg("Cost per day, stacked by model", parts)


def hbars(items: list[tuple[str, Decimal]], color: str) -> SafeString:
    height = 28 * max(1, len(items)) + 10
    peak = max((v for _n, v in items), default=Decimal(0)) or Decimal(1)
    parts = []
    for i, (name, usd) in enumerate(items):
        width = float(usd / peak) * 240
        y = 5 + i * 28
        parts.append(f'<text x="0" y="{y + 16}" font-size="12">{escape(name)}</text>')
        parts.append(
            f'<rect class="hbar" x="130" y="{y + 3}" width="{max(width, 1):.1f}" height="18" fill="{color}" '
            f'data-usd="{format_usd(usd)}"><title>{escape(name)}: ${format_usd(usd)}</title></rect>'
        )
        parts.append(f'<text x="{135 + width:.1f}" y="{y + 16}" font-size="11">${format_usd(usd)}</text>')
    body = "".join(parts) or '<text x="0" y="20" font-size="12">No usage in this period.</text>'
    return mark_safe(f'<svg xmlns="http://www.w3.org/2000/svg" width="460" height="{height}" role="img">{body}</svg>')  # noqa: S308 - built from escaped parts


def line(days: list[date], failures: dict[date, tuple[int, int]]) -> SafeString:
    plot_w, plot_h = W - PAD_L - 10, H - PAD_B - PAD_T
    slot = plot_w / max(1, len(days))
    points = []
    parts = [_axes(Decimal(100), "%")]
    for i, day in enumerate(days):
        runs, failed = failures.get(day, (0, 0))
        if not runs:
            continue
        rate = failed / runs
        x, y = PAD_L + (i + 0.5) * slot, PAD_T + plot_h * (1 - rate)
        points.append(f"{x:.1f},{y:.1f}")
        parts.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#c62828" data-day="{day}" '
            f'data-rate="{rate:.4f}"><title>{day}: {failed}/{runs} failed ({rate:.1%})</title></circle>'
        )
    if len(points) > 1:
        parts.insert(1, f'<polyline fill="none" stroke="#c62828" stroke-width="2" points="{" ".join(points)}"/>')
    return _svg("Failure rate per day", parts)


def _axes(peak: Decimal, unit: str) -> str:
    plot_h = H - PAD_B - PAD_T
    out = [f'<line x1="{PAD_L}" y1="{PAD_T + plot_h}" x2="{W - 10}" y2="{PAD_T + plot_h}" stroke="#999"/>']
    for k in range(5):
        value = peak * k / 4
        y = PAD_T + plot_h * (1 - k / 4)
        label = f"${format_usd(value.quantize(Decimal('1e-6')))}" if unit == "$" else f"{value:.0f}%"
        out.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - 10}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="2" y="{y + 4:.1f}" font-size="10" fill="#555">{label}</text>')
    return "".join(out)


def _svg(title: str, parts: list[str]) -> SafeString:
    return mark_safe(  # noqa: S308 - every interpolated value is escaped or numeric
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="{escape(title)}">{"".join(parts)}</svg>'
    )
