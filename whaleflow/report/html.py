"""Small HTML building blocks for the report page, and its stylesheet.

Plain strings with every piece of run data escaped: a label or a path from a data set
can hold ``<`` or ``&``. The page has no script and loads nothing from the network,
so it opens the same from a laptop's disk, a mail attachment or a CI artifact.
"""
from __future__ import annotations

import html
from typing import Iterable, Optional, Sequence

CSS = """
:root { --ink:#1f2933; --muted:#62707d; --line:#e3e8ee; --bg:#f6f8fa; --accent:#1b3a5c;
        --good:#2e8b57; --bad:#c0392b; --warn:#e08e0b; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:var(--accent); color:#fff; padding:22px 32px 18px; }
header h1 { margin:0 0 4px; font-size:24px; font-weight:600; }
header .meta { color:#c9d6e3; font-size:13px; word-break:break-all; }
nav { position:sticky; top:0; z-index:5; background:#fff; border-bottom:1px solid var(--line);
      padding:8px 32px; display:flex; gap:18px; flex-wrap:wrap; font-size:14px; }
nav a { color:var(--accent); text-decoration:none; }
nav a:hover { text-decoration:underline; }
main { max-width:1180px; margin:0 auto; padding:18px 32px 60px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:18px 22px;
          margin:18px 0; }
section h2 { margin:0 0 6px; font-size:19px; }
section h3 { font-size:15px; margin:18px 0 8px; }
p.lead { color:var(--muted); margin:0 0 12px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit, minmax(190px, 1fr)); gap:12px; margin:18px 0 0; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 16px;
        border-top:4px solid var(--accent); }
.card.good { border-top-color:var(--good); } .card.bad { border-top-color:var(--bad); }
.card.warn { border-top-color:var(--warn); }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .v { font-size:26px; font-weight:650; margin:2px 0; }
.card .s { color:var(--muted); font-size:13px; }
table { border-collapse:collapse; width:100%; font-size:14px; margin:6px 0 10px; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:middle; }
th { background:#f1f4f8; font-weight:600; font-size:13px; color:#394b59; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
tr.ens td { background:#eef4fb; font-weight:600; }
tr.base td { color:var(--muted); font-style:italic; }
.bar { display:flex; align-items:center; gap:8px; min-width:170px; }
.bar i { display:block; height:10px; border-radius:3px; background:var(--accent); }
.bar span { font-variant-numeric:tabular-nums; }
.figs { display:flex; flex-wrap:wrap; gap:16px; align-items:flex-start; }
figure { margin:6px 0; }
.figs figure { flex:1 1 440px; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:4px; background:#fff; }
figcaption { color:var(--muted); font-size:13px; max-width:760px; }
.note { background:#fff8e6; border-left:4px solid var(--warn); padding:8px 12px; margin:8px 0;
        font-size:14px; border-radius:0 4px 4px 0; }
.note.info { background:#eef4fb; border-left-color:var(--accent); }
ul.notes { margin:4px 0; padding-left:18px; }
details { margin:6px 0; }
summary { cursor:pointer; color:var(--accent); font-weight:600; }
pre { background:#0f1720; color:#dbe4ee; padding:14px; border-radius:6px; overflow:auto; font-size:12.5px;
      max-height:640px; }
.kv td:first-child { color:var(--muted); }
.kv td.num { width:1%; white-space:nowrap; }
.grid2 { display:grid; grid-template-columns:repeat(auto-fit, minmax(230px, 1fr)); gap:8px 24px; }
.gk { margin-top:22px; padding-bottom:4px; border-bottom:2px solid var(--line); }
.gk-miss { color:var(--bad); } .gk-late { color:#a66a00; } .gk-hit { color:var(--good); }
.grow { padding:10px 0 12px; border-bottom:1px dashed var(--line); }
.ghead { font-size:13px; color:var(--muted); margin-bottom:6px; }
.ghead b { color:var(--ink); }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; color:#fff; font-size:12px; font-weight:600; }
.b-miss { background:var(--bad); } .b-late { background:var(--warn); } .b-hit { background:var(--good); }
.gtiles { display:flex; gap:8px; align-items:flex-start; overflow-x:auto; }
.tile { width:124px; flex:0 0 124px; border:3px solid transparent; border-radius:6px; padding:3px;
        background:#fafbfc; }
.tile img, .tile .ph { display:block; width:112px; height:112px; object-fit:contain; background:#e9edf1;
                       border-radius:3px; }
.tile.correct { border-color:var(--good); background:#eaf6ef; }
.tile.query { background:#eef4fb; }
.tile.truth { background:#f3f3f3; }
.tile .lab { font-size:11.5px; margin-top:3px; white-space:nowrap; overflow:hidden; text-overflow:ellipsis;
             font-family:ui-monospace, Menlo, Consolas, monospace; }
.tile .cap { font-size:11px; color:var(--muted); }
.ph { display:flex !important; flex-direction:column; align-items:center; justify-content:center; text-align:center; }
.ph.newwhale { background:repeating-linear-gradient(45deg, #e3edf7, #e3edf7 8px, #d6e3f0 8px,
               #d6e3f0 16px) !important;
               color:var(--accent); }
.ph.newwhale span { font-weight:700; font-size:14px; }
.ph.newwhale small { font-size:10.5px; color:var(--muted); padding:0 6px; }
.ph.missing { color:var(--muted); font-size:12px; }
.arrow { align-self:center; font-size:22px; color:var(--muted); }
.sep { width:1px; align-self:stretch; background:var(--line); margin:0 4px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:20px; }
"""


def esc(value) -> str:
    """HTML-escaped text of any value (``None`` → empty)."""
    return "" if value is None else html.escape(str(value))


def fmt(value, digits: int = 4, empty: str = "–") -> str:
    """A number for a table cell: floats rounded, ints with thousands separators."""
    if value is None or value == "":
        return empty
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    try:
        f = float(value)
    except (TypeError, ValueError):
        return esc(value)
    if f != f:  # NaN
        return empty
    return f"{f:,.0f}" if f.is_integer() and abs(f) >= 1000 else f"{f:.{digits}f}"


def seconds(value) -> str:
    """A duration: ``42.0 s``, ``3 min 05 s``, ``1 h 02 min``."""
    try:
        s = float(value)
    except (TypeError, ValueError):
        return "–"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m} min {sec:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def map_bar(value: Optional[float], scale: float = 1.0, color: str = "") -> str:
    """A MAP@5 cell: a small horizontal bar and the number."""
    if value is None:
        return "–"
    width = max(0.0, min(1.0, value / scale if scale > 0 else 0.0)) * 120
    style = f"width:{width:.0f}px" + (f";background:{color}" if color else "")
    return f'<div class="bar"><i style="{style}"></i><span>{value:.4f}</span></div>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Sequence[int] = (),
          row_classes: Sequence[str] = (), cls: str = "") -> str:
    """A table of pre-rendered cells (escape data with :func:`esc` before passing it)."""
    num = set(numeric)
    head = "".join(f'<th class="num">{h}</th>' if i in num else f"<th>{h}</th>" for i, h in enumerate(headers))
    body = []
    row_classes = list(row_classes)
    for r, cells in enumerate(rows):
        rc = f' class="{row_classes[r]}"' if r < len(row_classes) and row_classes[r] else ""
        tds = "".join(f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>" for i, c in enumerate(cells))
        body.append(f"<tr{rc}>{tds}</tr>")
    c = f' class="{cls}"' if cls else ""
    return f"<table{c}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def key_values(pairs: Iterable[tuple[str, str]]) -> str:
    """A two-column table of labels and pre-rendered values."""
    return table(["", ""], [(esc(k), v) for k, v in pairs], numeric=(1,), cls="kv").replace(
        "<thead><tr><th></th><th class=\"num\"></th></tr></thead>", "")


def figure(src: str, alt: str, caption: str = "", width: Optional[int] = None) -> str:
    style = f' style="max-width:{width}px"' if width else ""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure{style}><img src="{src}" alt="{esc(alt)}">{cap}</figure>'


def card(label: str, value: str, sub: str = "", tone: str = "") -> str:
    return (f'<div class="card {tone}"><div class="k">{esc(label)}</div><div class="v">{value}</div>'
            f'<div class="s">{sub}</div></div>')


def note(text: str, info: bool = False) -> str:
    return f'<div class="note{" info" if info else ""}">{text}</div>'


def notes_list(items: Sequence[str]) -> str:
    return "<ul class=\"notes\">" + "".join(f"<li>{esc(n)}</li>" for n in items) + "</ul>"


def section(anchor: str, title: str, body: str, lead: str = "") -> str:
    lead_html = f'<p class="lead">{lead}</p>' if lead else ""
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{lead_html}{body}</section>'


def page(title: str, header_meta: str, cards_html: str, nav: Sequence[tuple[str, str]], sections: Sequence[str],
         footer: str = "") -> str:
    """The whole document."""
    links = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in nav)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><div class=\"meta\">{header_meta}</div></header>"
        f"<nav>{links}</nav><main><div class=\"cards\">{cards_html}</div>{''.join(sections)}</main>"
        f"<footer>{footer}</footer></body></html>\n"
    )
