"""Charts drawn on the server as inline SVG: no script, no external asset, readable when printed.

Every text inside goes through markupsafe's escape; colours come from CSS classes (``status-<key>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

from nhm_dashboard import vocabulary as words

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28
# Width in pixels of the band of the status in force, however recently it began.
MIN_CURRENT_BAND = 8


@dataclass(frozen=True)
class HealthPoint:
    """The number's score and status from ``time`` on (until the next point)."""

    time: datetime
    score: int
    status: words.Status
    cause: str = ""


@dataclass(frozen=True)
class DayBar:
    date: str  # YYYY-MM-DD
    outbound: int
    answered: int


def _x(t: datetime, start: datetime, end: datetime) -> float:
    span = (end - start).total_seconds() or 1.0
    fraction = min(1.0, max(0.0, (t - start).total_seconds() / span))
    return LEFT + fraction * (WIDTH - LEFT - RIGHT)


def _y(value: float, top_value: float) -> float:
    plot = HEIGHT - TOP - BOTTOM
    return TOP + plot - (min(value, top_value) / (top_value or 1.0)) * plot


def _frame(title: str, body: list[str], y_labels: Sequence[tuple[float, str]],
           x_labels: Sequence[tuple[float, str, str]], css: str) -> Markup:
    """The chart's axes around its body; each x label is (x, text, text-anchor)."""
    parts = [f'<svg class="chart {css}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">', f"<title>{escape(title)}</title>"]
    for y, label in y_labels:
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    for x, label, anchor in x_labels:
        parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">{escape(label)}</text>')
    parts.extend(body)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text placed inside went through escape()


def _date_labels(start: datetime, end: datetime, count: int = 5) -> list[tuple[float, str, str]]:
    labels = []
    for i in range(count):
        t = start + (end - start) * (i / (count - 1))
        # The last date ends at the right edge of the plot instead of running past the chart.
        anchor = "end" if i == count - 1 else "middle"
        labels.append((_x(t, start, end), t.strftime("%b %d"), anchor))
    return labels


def health_chart(points: Sequence[HealthPoint], start: datetime, end: datetime) -> Markup:
    """Score (0-100) as a step line over time, on bands coloured by the status in force.

    ``points`` oldest first; the last point before ``start`` sets where the chart begins.
    """
    title = f"Score and status from {start:%b %d} to {end:%b %d}"
    y_labels = [(_y(v, 100), str(v)) for v in (0, 25, 50, 75, 100)]
    if not points:
        body = [f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
                "No health recorded yet</text>"]
        return _frame(title, body, y_labels, _date_labels(start, end), "health-chart")
    earlier = [p for p in points if p.time <= start]
    shown = ([HealthPoint(start, earlier[-1].score, earlier[-1].status, earlier[-1].cause)] if earlier else []) + [
        p for p in points if start < p.time <= end]
    body: list[str] = []
    line: list[str] = []
    for i, point in enumerate(shown):
        x0 = _x(point.time, start, end)
        x1 = _x(shown[i + 1].time, start, end) if i + 1 < len(shown) else _x(end, start, end)
        if i + 1 == len(shown) and x1 - x0 < MIN_CURRENT_BAND:
            x0 = x1 - MIN_CURRENT_BAND  # a status that began just now still shows its colour
        body.append(f'<rect class="band status-{point.status.key}" x="{x0:.1f}" y="{TOP}" '
                    f'width="{max(x1 - x0, 0.5):.1f}" height="{HEIGHT - TOP - BOTTOM}">'
                    f"<title>{escape(point.status.label)} from {point.time:%b %d %H:%M}</title></rect>")
        y = _y(point.score, 100)
        line.append(f"M{x0:.1f},{y:.1f}" if i == 0 else f"H{x0:.1f}V{y:.1f}")
    line.append(f"H{_x(end, start, end):.1f}")
    body.append(f'<path class="score-line" d="{"".join(line)}"/>')
    for point in shown:
        if point.time <= start:
            continue
        x, y = _x(point.time, start, end), _y(point.score, 100)
        tip = f"{point.time:%b %d %H:%M}: {point.status.label}, score {point.score}"
        if point.cause:
            tip += f" ({point.cause})"
        body.append(f'<circle class="point status-{point.status.key}" cx="{x:.1f}" cy="{y:.1f}" r="4">'
                    f"<title>{escape(tip)}</title></circle>")
    return _frame(title, body, y_labels, _date_labels(start, end), "health-chart")


def activity_chart(days: Sequence[DayBar]) -> Markup:
    """Outbound calls per day as bars, answered calls as the darker part of each bar."""
    title = f"Calls per day over the last {len(days)} days"
    peak = max((d.outbound for d in days), default=0)
    top = max(4, _nice_ceiling(peak))
    y_labels = [(_y(v, top), str(v)) for v in (0, top // 2, top)]
    plot_width = WIDTH - LEFT - RIGHT
    step = plot_width / max(len(days), 1)
    body: list[str] = []
    for i, day in enumerate(days):
        x = LEFT + i * step + step * 0.15
        width = step * 0.7
        y_out, y_ans = _y(day.outbound, top), _y(day.answered, top)
        tip = f"{day.date}: {day.outbound} outbound, {day.answered} answered"
        body.append(f'<g><title>{escape(tip)}</title>'
                    f'<rect class="bar outbound" x="{x:.1f}" y="{y_out:.1f}" width="{width:.1f}" '
                    f'height="{_y(0, top) - y_out:.1f}"/>'
                    f'<rect class="bar answered" x="{x:.1f}" y="{y_ans:.1f}" width="{width:.1f}" '
                    f'height="{_y(0, top) - y_ans:.1f}"/></g>')
    x_labels = [(LEFT + i * step + step / 2, days[i].date[5:], "middle")
                for i in range(0, len(days), max(1, len(days) // 6))]
    return _frame(title, body, y_labels, x_labels, "activity-chart")


def _nice_ceiling(value: int) -> int:
    for nice in (4, 10, 20, 50, 100, 150, 200, 500, 1000):
        if value <= nice:
            return nice
    return ((value + 999) // 1000) * 1000
