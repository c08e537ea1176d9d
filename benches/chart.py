#!/usr/bin/env python3
"""Draw benches/chart.svg from the tables in benches/RESULTS.md: the load
benchmark's throughput and peak memory per server (the README shows it).

    python3 benches/chart.py            # writes benches/chart.svg

Standard library only; the numbers come from RESULTS.md, never from here.
"""
import html
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent


def table_after(text, heading):
    """Rows (lists of cells) of the first markdown table after `heading`."""
    start = text.find(heading)
    if start < 0:
        sys.exit(f"chart.py: no section {heading!r} in RESULTS.md")
    rows, seen = [], False
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            seen = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r"-+", c) for c in cells):
                rows.append(cells)
        elif seen:
            break
    return rows


def number(cell):
    m = re.search(r"[\d,]+(\.\d+)?", cell.replace("*", ""))
    return float(m.group(0).replace(",", "")) if m else 0.0


def bars(title, unit, items, x, y, width=360, bar_h=26):
    """One horizontal bar chart as SVG elements."""
    top = max(v for _, v in items) or 1
    out = [f'<text x="{x}" y="{y}" font-weight="bold">{html.escape(title)}</text>']
    for i, (label, value) in enumerate(items):
        yy = y + 14 + i * (bar_h + 8)
        w = max(2, int(width * value / top))
        colour = "#2b7bb9" if label.startswith("clusterdns") else "#9aa5b1"
        out.append(f'<text x="{x}" y="{yy + 18}">{html.escape(label)}</text>')
        out.append(f'<rect x="{x + 110}" y="{yy}" width="{w}" height="{bar_h}" fill="{colour}"/>')
        out.append(f'<text x="{x + 116 + w}" y="{yy + 18}">{value:,.0f} {unit}</text>')
    return out, y + 14 + len(items) * (bar_h + 8)


def main():
    text = (HERE / "RESULTS.md").read_text()
    rows = table_after(text, "## load")
    head, body = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(head)}
    qps = [(r[0].strip("*"), number(r[col["queries/s (max)"]])) for r in body]
    rss = [(r[0].strip("*"), number(r[col["peak RSS MiB (VmHWM)"]])) for r in body]
    parts, y = bars("UDP queries/s, one core (benches/RESULTS.md, load)", "q/s", qps, 10, 24)
    more, y = bars("peak memory, 10k Services", "MiB", rss, 10, y + 30)
    parts += more
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="{y + 10}" '
        f'font-family="sans-serif" font-size="13">\n' + "\n".join(parts) + "\n</svg>\n"
    )
    (HERE / "chart.svg").write_text(svg)
    print(f"wrote {HERE / 'chart.svg'}")


if __name__ == "__main__":
    main()
