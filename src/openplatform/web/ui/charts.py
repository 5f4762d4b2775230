"""The app page's bar charts as geometry for inline SVG (``templates/console/_chart.html``).

Server-rendered, no script and no library: every bucket is a group with its own ``<title>``
(the browser's tooltip), the chart has a ``<title>`` and ``<desc>`` for screen readers, and
the page repeats the numbers in a table. Colours are CSS classes (style.css): the pages'
Content-Security-Policy allows no inline style.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from openplatform.services.console import Activity, Bucket

WIDTH, HEIGHT = 720, 230
# The plot area inside the viewBox; the right margin holds half of the last time label (centred on its bar).
LEFT, RIGHT, TOP, BOTTOM = 48, 692, 14, 190
COLOURED_REASONS = 5  # further reasons share the colour "other"


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str  # "grants", or "failed r0" … "failed r5"


@dataclass(frozen=True, slots=True)
class Slot:
    """One bucket: its tooltip, its bars, and the strip that shows the tooltip on hover."""

    title: str
    x: float
    width: float
    bars: list[Bar]


@dataclass(frozen=True, slots=True)
class Mark:
    at: float  # x for a time label, y for a count
    text: str


@dataclass(frozen=True, slots=True)
class Row:
    when: str
    grants: int
    failed: int
    reasons: str  # "invalid_grant 2, invalid_client 1"


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything the template draws; coordinates are in the viewBox ``0 0 WIDTH HEIGHT``."""

    id: str
    title: str
    summary: str  # the text alternative: totals, the busiest bucket, the reasons
    axis: str  # what the time axis counts, e.g. "hour (UTC)"
    slots: list[Slot]
    counts: list[Mark]  # y axis: grid lines and their labels
    times: list[Mark]  # x axis labels
    rows: list[Row]
    grants: int
    failed: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = RIGHT
    top: int = TOP
    bottom: int = BOTTOM


def reason_classes(reasons: list[str]) -> dict[str, str]:
    """reason → its CSS class: the most frequent ones a colour each, the rest "r5" ("other")."""
    return {reason: f"r{min(i, COLOURED_REASONS)}" for i, reason in enumerate(reasons)}


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 × 10^k that is at least ``value`` (and at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _reasons_text(failures: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(failures.items(), key=lambda kv: (-kv[1], kv[0])))


def _when(bucket: Bucket, hourly: bool) -> str:
    start = datetime.fromtimestamp(bucket.start, UTC)
    if hourly:
        end = datetime.fromtimestamp(bucket.start + bucket.width, UTC)
        return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M} UTC"
    return f"{start:%Y-%m-%d} (UTC day)"


def bar_chart(chart_id: str, title: str, buckets: list[Bucket], classes: dict[str, str], hourly: bool) -> Chart:
    """Two bars per bucket: access tokens issued, and refused requests stacked by reason."""
    n = len(buckets)
    top_value = nice_ceiling(max([1] + [max(b.grants, b.failed) for b in buckets]))
    scale = (BOTTOM - TOP) / top_value
    slot_width = (RIGHT - LEFT) / n
    slots: list[Slot] = []
    for i, bucket in enumerate(buckets):
        x = LEFT + i * slot_width
        bars: list[Bar] = []
        if bucket.grants:
            height = bucket.grants * scale
            bars.append(Bar(round(x + slot_width * 0.1, 2), round(BOTTOM - height, 2), round(slot_width * 0.38, 2),
                            round(height, 2), "grants"))  # fmt: skip
        base = float(BOTTOM)
        for reason, count in sorted(bucket.failures.items(), key=lambda kv: classes.get(kv[0], "r5")):
            height = count * scale
            base -= height
            bars.append(Bar(round(x + slot_width * 0.52, 2), round(base, 2), round(slot_width * 0.38, 2),
                            round(height, 2), f"failed {classes.get(reason, 'r5')}"))  # fmt: skip
        tip = f"{_when(bucket, hourly)}: {_plural(bucket.grants, 'access token')} issued, {bucket.failed} refused"
        if bucket.failures:
            tip += f" ({_reasons_text(bucket.failures)})"
        slots.append(Slot(tip, round(x, 2), round(slot_width, 2), bars))
    ticks = (0, top_value // 2, top_value) if top_value % 2 == 0 else (0, top_value)  # 5: no 2.5
    counts = [Mark(round(BOTTOM - v * scale, 2), str(v)) for v in ticks]
    step = 6 if hourly else 5
    times = [
        Mark(round(LEFT + (i + 0.5) * slot_width, 2),
             datetime.fromtimestamp(b.start, UTC).strftime("%H:%M" if hourly else "%b %d"))
        for i, b in enumerate(buckets) if (n - 1 - i) % step == 0
    ]  # fmt: skip
    grants, failed = sum(b.grants for b in buckets), sum(b.failed for b in buckets)
    totals: dict[str, int] = {}
    for b in buckets:
        for reason, count in b.failures.items():
            totals[reason] = totals.get(reason, 0) + count
    summary = f"{_plural(grants, 'access token')} issued and {_plural(failed, 'request')} refused"
    if totals:
        summary += f" ({_reasons_text(totals)})"
    busiest = max(buckets, key=lambda b: (b.grants, b.start))
    if busiest.grants:
        summary += f"; the most tokens, {busiest.grants}, in {_when(busiest, hourly)}"
    rows = [Row(_when(b, hourly), b.grants, b.failed, _reasons_text(b.failures)) for b in reversed(buckets)]
    return Chart(
        chart_id, title, summary + ".", "hour (UTC)" if hourly else "day (UTC)", slots, counts, times, rows,
        grants, failed,
    )  # fmt: skip


def activity_charts(activity: Activity) -> tuple[list[Chart], dict[str, str]]:
    """The page's two charts (per hour over 24 hours, per day over 30 days) and the reasons' classes."""
    classes = reason_classes(activity.reasons)
    return [
        bar_chart("chart-hours", "Last 24 hours, per hour", activity.hours, classes, hourly=True),
        bar_chart("chart-days", "Last 30 days, per day", activity.days, classes, hourly=False),
    ], classes
