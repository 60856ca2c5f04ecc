"""The report's charts, drawn with matplotlib's object API on the Agg canvas.

No ``pyplot``: figures are built as :class:`matplotlib.figure.Figure` objects and
rendered by ``FigureCanvasAgg`` directly, so building a report never switches the
global backend of a process that also plots (a notebook, a test session), and never
needs a display. Each ``*_figure`` function returns a figure, or ``None`` when its
input is missing; :func:`to_png` renders it.
"""
from __future__ import annotations

import io
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

ENSEMBLE_COLOR = "#1b3a5c"
BASELINE_COLOR = "#9a9a9a"
GOOD, BAD, NEUTRAL = "#2e8b57", "#c0392b", "#e08e0b"
PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#9d755d", "#eeca3b", "#ff9da6"]
STAGE_SHADES = ["#f3f6fa", "#e6edf5"]
DPI = 110


def model_colors(names: Sequence[str]) -> dict[str, str]:
    """A stable colour per model name (same model → same colour in every chart)."""
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, axis="both", color="#e4e4e4", linewidth=0.7)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=9)


def to_png(fig: Figure) -> bytes:
    """PNG bytes of ``fig`` (white background, tight bounds)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()


def scores_figure(rows: list[dict], ensemble_val: Optional[float], test: Optional[float] = None,
                  baseline: Optional[float] = None) -> Optional[Figure]:
    """Horizontal bars: validation MAP@5 of each model and of the ensemble (+ test, baseline)."""
    bars = [(r["name"], r["val_map5"], None) for r in rows if r.get("val_map5") is not None]
    if not bars and ensemble_val is None:
        return None
    colors = model_colors([r["name"] for r in rows])  # the same colours as the table and the curves
    entries = [(n, v, colors[n]) for n, v, _ in bars]
    if ensemble_val is not None:
        entries.append(("ensemble (validation)", ensemble_val, ENSEMBLE_COLOR))
    if test is not None:
        entries.append(("ensemble (test)", test, GOOD))
    fig = _figure(7.2, 0.42 * len(entries) + 1.2)
    ax = fig.add_subplot()
    _style(ax)
    y = np.arange(len(entries))[::-1]
    ax.barh(y, [e[1] for e in entries], color=[e[2] for e in entries], height=0.62)
    for yi, (_, v, _) in zip(y, entries):
        ax.text(v + 0.01, yi, f"{v:.3f}", va="center", fontsize=9)
    ax.set_yticks(y, [e[0] for e in entries])
    if baseline is not None:
        ax.axvline(baseline, color=BASELINE_COLOR, linestyle="--", linewidth=1.2)
        ax.text(baseline, len(entries) - 0.35, f" frequency baseline (test) {baseline:.3f}", color="#555",
                fontsize=8, va="bottom")
    hi = max([e[1] for e in entries] + [baseline or 0])
    ax.set_xlim(0, min(1.0, hi * 1.18 + 0.02) if hi > 0 else 1.0)
    ax.set_ylim(-0.6, len(entries) - 0.1 + (0.5 if baseline is not None else 0))
    ax.set_xlabel("MAP@5 (higher is better)", fontsize=9)
    ax.set_title("How well each model did", fontsize=11, loc="left")
    return fig


def weights_figure(weights: dict[str, float], names_order: Sequence[str] = ()) -> Optional[Figure]:
    """Bars of the blend weights (normalised to sum to 1), in the models' colour."""
    if not weights:
        return None
    names = [n for n in names_order if n in weights] + [n for n in weights if n not in names_order]
    vals = np.array([max(0.0, float(weights[n])) for n in names])
    total = vals.sum()
    share = vals / total if total > 0 else vals
    colors = model_colors(list(names_order) or names)
    fig = _figure(4.6, 0.45 * len(names) + 1.2)
    ax = fig.add_subplot()
    _style(ax)
    y = np.arange(len(names))[::-1]
    ax.barh(y, share, color=[colors.get(n, PALETTE[0]) for n in names], height=0.6)
    for yi, s in zip(y, share):
        ax.text(s + 0.01, yi, f"{100 * s:.0f} %", va="center", fontsize=9)
    ax.set_yticks(y, names)
    ax.set_xlim(0, min(1.0, share.max() * 1.2 + 0.05) if len(share) else 1.0)
    ax.set_xlabel("share of the blend", fontsize=9)
    ax.set_title("Blend weights", fontsize=11, loc="left")
    return fig


def threshold_figure(curve: Optional[pd.DataFrame], threshold: Optional[float]) -> Optional[Figure]:
    """Validation MAP@5 against the new_whale threshold, the chosen threshold marked."""
    if curve is None or not len(curve) or not {"threshold", "map5"} <= set(curve.columns):
        return None
    c = curve.sort_values("threshold")
    fig = _figure(5.6, 3.3)
    ax = fig.add_subplot()
    _style(ax)
    ax.plot(c["threshold"], c["map5"], color=ENSEMBLE_COLOR, linewidth=1.8)
    best = c.loc[c["map5"].idxmax()]
    if threshold is not None:
        at = float(np.interp(threshold, c["threshold"], c["map5"]))
        ax.axvline(threshold, color=GOOD, linestyle="--", linewidth=1)
        ax.plot([threshold], [at], "o", color=GOOD, markersize=8, zorder=5)
        lo, hi = float(c["threshold"].min()), float(c["threshold"].max())
        right_half = threshold > (lo + hi) / 2
        ax.annotate(f"chosen {threshold:.3g}\nMAP@5 {at:.3f}", (threshold, at), textcoords="offset points",
                    xytext=(-10 if right_half else 10, -30), ha="right" if right_half else "left",
                    fontsize=9, color=GOOD)
    else:
        ax.plot([best["threshold"]], [best["map5"]], "o", color=NEUTRAL, markersize=8)
    ax.set_xlabel("new_whale threshold (blend score)", fontsize=9)
    ax.set_ylabel("validation MAP@5", fontsize=9)
    ax.set_title("new_whale threshold", fontsize=11, loc="left")
    return fig


def _size_label(value) -> Optional[str]:
    """``64`` → "64 px", "64x128" → "64×128 px"; None when the size is unknown."""
    if isinstance(value, str) and value.strip():
        return value.replace("x", "×") + " px"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return f"{int(v)} px" if np.isfinite(v) else None


def _stage_spans(m: pd.DataFrame) -> list[tuple[float, float, str]]:
    """(first epoch, last epoch, label) of each image-size stage, epochs 1-based."""
    if "stage" not in m or m["stage"].isna().all():
        return []
    spans, ep = [], m["epoch"].to_numpy() + 1
    stage = m["stage"].fillna(-1).to_numpy()
    size = m["size"].to_numpy() if "size" in m else np.full(len(m), np.nan)
    start = 0
    for i in range(1, len(m) + 1):
        if i == len(m) or stage[i] != stage[start]:
            label = _size_label(size[start]) or f"stage {int(stage[start])}"
            spans.append((ep[start] - 0.5, ep[i - 1] + 0.5, label))
            start = i
    return spans


MINING_CURVES = (("mining_neg_score", "negatives: mean P(same)", BAD),
                 ("mining_pos_score", "positives: mean P(same)", GOOD),
                 ("mining_neg_easy", "negatives already < 0.5", NEUTRAL))


def _mining_rounds(m: pd.DataFrame) -> bool:
    return any(c in m and pd.to_numeric(m[c], errors="coerce").notna().any() for c, _, _ in MINING_CURVES)


def _mining_panel(ax, m: pd.DataFrame, ep: np.ndarray) -> None:
    """Per mining round (siamese): how hard the mined pairs are to the model that mined them."""
    for col, label, color in MINING_CURVES:
        y = pd.to_numeric(m[col], errors="coerce").to_numpy(dtype=float) if col in m else np.full(len(m), np.nan)
        ok = np.isfinite(y)
        ax.plot(ep[ok], y[ok], "-o", color=color, markersize=3, linewidth=1.4, label=label)
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("mined pairs (per round)", fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="best")


def trial_figure(name: str, m: pd.DataFrame, best_epoch: Optional[int] = None,
                 color: str = PALETTE[0]) -> Optional[Figure]:
    """Loss and validation MAP@5 per epoch, image-size stages shaded and labelled; for a
    siamese model that mined, a third panel with each round's mined-pair scores."""
    if m is None or not len(m):
        return None
    ep = m["epoch"].to_numpy() + 1
    panels = [("loss", "training loss")]
    if "val_map5" in m and m["val_map5"].notna().any():
        panels.append(("val_map5", "validation MAP@5"))
    if _mining_rounds(m):
        panels.append(("mining", "mined pairs"))
    fig = _figure(7.6 if len(panels) < 3 else 10.5, 2.9)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    spans = _stage_spans(m)
    for ax, (col, label) in zip(axes, panels):
        _style(ax)
        ax.grid(False, axis="x")
        for i, (a, b, text) in enumerate(spans):
            ax.axvspan(a, b, color=STAGE_SHADES[i % 2], zorder=0, linewidth=0)
            ax.text((a + b) / 2, 1.0, text, transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    fontsize=8, color="#555")
        ax.set_xlabel("epoch", fontsize=9)
        if len(ep) and ep.max() - ep.min() < 12:
            ax.set_xticks(ep)
        if col == "mining":
            _mining_panel(ax, m, ep)
            continue
        y = m[col].to_numpy(dtype=float) if col in m else np.full(len(m), np.nan)
        ok = np.isfinite(y)
        ax.plot(ep[ok], y[ok], "-o", color=color, markersize=3, linewidth=1.6)
        ax.set_ylabel(label, fontsize=9)
        if col == "val_map5" and ok.any():
            k = int(np.nanargmax(np.where(ok, y, -np.inf))) if best_epoch is None else None
            e_best = best_epoch + 1 if best_epoch is not None else ep[k]
            if e_best in set(ep[ok]):
                v = y[ep == e_best][0]
                ax.plot([e_best], [v], "*", color=GOOD, markersize=13, zorder=5)
                ax.annotate(f"best {v:.3f}", (e_best, v), textcoords="offset points", xytext=(0, 9),
                            ha="center", fontsize=8, color=GOOD)
                ax.margins(y=0.18)
    fig.suptitle(name, fontsize=11, x=0.01, ha="left")
    return fig


def data_figure(index: Optional[pd.DataFrame], new_whale: str = "new_whale") -> Optional[Figure]:
    """Images by role (train / val / unused / test) and the images-per-individual histogram."""
    if index is None or not len(index) or not {"split", "role", "id"} <= set(index.columns):
        return None
    fig = _figure(7.6, 2.9)
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1, 1.25])
    _style(ax1)
    _style(ax2)
    roles = ["train", "val", "unused", "test"]
    known = [int(((index["role"] == r) & (index["id"] != new_whale) & (index["split"] != "test")).sum())
             for r in roles]
    nw = [int(((index["role"] == r) & (index["id"] == new_whale)).sum()) for r in roles]
    test = [0, 0, 0, int((index["split"] == "test").sum())]
    y = np.arange(len(roles))[::-1]
    ax1.barh(y, known, color=PALETTE[0], label="known individual")
    ax1.barh(y, nw, left=known, color=NEUTRAL, label="new_whale")
    ax1.barh(y, test, left=np.add(known, nw), color=BASELINE_COLOR, label="test (unlabelled)")
    for yi, tot in zip(y, np.add(np.add(known, nw), test)):
        ax1.text(tot, yi, f" {tot}", va="center", fontsize=8)
    ax1.set_yticks(y, roles)
    ax1.set_xlabel("images", fontsize=9)
    ax1.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.45, -0.22), ncol=3,
               handlelength=1, columnspacing=0.8)
    ax1.set_title("images by role", fontsize=10, loc="left")
    labelled = index[(index["split"] != "test") & (index["id"] != new_whale) & (index["id"] != "")]
    counts = labelled["id"].value_counts().to_numpy()
    if len(counts):
        top = int(min(counts.max(), 20))
        binned = np.minimum(counts, top)
        values = np.bincount(binned, minlength=top + 1)[1:]
        ax2.bar(np.arange(1, top + 1), values, color=PALETTE[0], width=0.8)
        ax2.set_xlabel("images per individual" + (f" ({top} = {top} or more)" if counts.max() > top else ""),
                       fontsize=9)
        ax2.set_ylabel("individuals", fontsize=9)
        ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
        single = int((counts == 1).sum())
        ax2.set_title(f"{len(counts)} individuals, {single} seen only once", fontsize=10, loc="left")
    return fig


def hits_figure(vp: Optional[pd.DataFrame], new_whale: str = "new_whale") -> Optional[Figure]:
    """Where the true label landed in the ensemble's top-5, for known individuals and new_whale."""
    if vp is None or not len(vp) or "hit_position" not in vp:
        return None
    labels = ["1st", "2nd", "3rd", "4th", "5th", "miss"]
    pos = vp["hit_position"].to_numpy()
    is_new = (vp["truth"] == new_whale).to_numpy()
    bins = lambda sel: [int(((pos == i) & sel).sum()) for i in range(1, 6)] + [int(((pos == 0) & sel).sum())]
    known, nw = bins(~is_new), bins(is_new)
    fig = _figure(6.2, 2.8)
    ax = fig.add_subplot()
    _style(ax)
    x = np.arange(len(labels))
    ax.bar(x, known, color=PALETTE[0], label="truth: known individual", width=0.7)
    ax.bar(x, nw, bottom=known, color=NEUTRAL, label="truth: new_whale", width=0.7)
    for xi, tot in zip(x, np.add(known, nw)):
        ax.text(xi, tot, f"{tot}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, labels)
    ax.get_xticklabels()[-1].set_color(BAD)
    ax.set_ylabel("validation images", fontsize=9)
    ax.set_xlabel("position of the true label in the ensemble's top-5", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("Where the right answer landed", fontsize=11, loc="left")
    return fig
