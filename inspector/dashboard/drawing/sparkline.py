"""A handler's succeeded runs per minute as a small inline SVG line."""

from django.utils.html import escape

from inspector.dashboard.drawing.svg import num

SPARK_WIDTH = 120
SPARK_HEIGHT = 28


def sparkline_svg(
    series,
    *,
    width=SPARK_WIDTH,
    height=SPARK_HEIGHT,
    title="{total} runs succeeded in the last hour; peak {peak} a minute",
    colors=("#dcfce7", "#15803d"),
):
    """Succeeded runs per minute as a small inline SVG line; only numbers go into it (and the
    caller's `title`, filled with the total and the peak, escaped)."""
    peak = max(series, default=0)
    total = sum(series)
    step = width / max(len(series) - 1, 1)
    scale = (height - 4) / peak if peak else 0

    def point(i, value):
        return f"{num(i * step)},{num(height - 2 - value * scale)}"

    line = " ".join(point(i, v) for i, v in enumerate(series))
    area = f"0,{height} {line} {num(width)},{height}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sparkline" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">'
        f"<title>{escape(title.format(total=total, peak=peak))}</title>"
        f'<polygon points="{area}" fill="{colors[0]}"/>'
        f'<polyline points="{line}" fill="none" stroke="{colors[1]}" stroke-width="1.5"/></svg>'
    )
