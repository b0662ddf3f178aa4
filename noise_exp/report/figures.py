"""Figures of the report: winning-rate bars (the paper's Figures 3 and 5) and A-next-to-B image grids
(Figures 4 and 6)."""
from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Sequence

import pandas as pd
from PIL import Image, ImageDraw, ImageFont, ImageOps

from noise_exp.report.tables import METRIC_LABELS, NFE, paired_scores
from noise_exp.results import atomic_write_bytes

BLUE, ORANGE = "#1f77b4", "#ff7f0e"  # the paper's colours: blue = side A, orange = side B


def save_figure(figure, path: Path, dpi: int = 120) -> Path:
    """A matplotlib figure as a PNG file, written atomically; the figure is closed."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def winning_rate_chart(rates: pd.DataFrame, path: Path, settings: Sequence[str] = ()) -> Path:
    """Horizontal stacked bars, one panel per comparison: A's share (blue, with its 95% CI) and B's (orange); one
    bar per (setting, dataset, metric), labelled `lr=10 / drawbench / HPS v2`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comparisons = list(dict.fromkeys(zip(rates["a"], rates["b"])))
    heights = [max(1, int(((rates["a"] == a) & (rates["b"] == b)).sum())) for a, b in comparisons]
    figure, axes = plt.subplots(len(comparisons), 1, squeeze=False, figsize=(7, 1.2 + 0.45 * sum(heights)),
                                gridspec_kw={"height_ratios": heights})
    for axis, (a, b) in zip(axes[:, 0], comparisons):
        part = rates[(rates["a"] == a) & (rates["b"] == b)].reset_index(drop=True)
        labels = [" / ".join([*(f"{c}={row[c]}" for c in settings), str(row["dataset"]),
                              METRIC_LABELS.get(row["metric"], row["metric"])]) for _, row in part.iterrows()]
        y = range(len(part))
        share = part["win_rate"].fillna(0).to_numpy()
        axis.barh(y, share, color=BLUE, label=a)
        axis.barh(y, 1 - share, left=share, color=ORANGE, label=b)
        error = [share - part["ci_low"].fillna(0).to_numpy(), part["ci_high"].fillna(0).to_numpy() - share]
        axis.errorbar(share, list(y), xerr=error, fmt="none", ecolor="black", capsize=3, linewidth=1)
        for row, value in zip(y, share):
            axis.text(0.01, row, f"{100 * value:.1f}%", va="center", ha="left", color="white", fontsize=8)
        axis.axvline(0.5, color="grey", linestyle="--", linewidth=0.8)
        axis.set_yticks(list(y), labels, fontsize=8)
        axis.set_xlim(0, 1)
        axis.invert_yaxis()
        axis.set_title(f"{a} vs {b}: winning rate (ties half, 95% Wilson CI)", fontsize=9)
        axis.legend(loc="lower right", fontsize=7)
    return save_figure(figure, path)


def quality_vs_nfe(frame: pd.DataFrame, metrics: Sequence[str], settings: Sequence[str], path: Path) -> Path:
    """Quality per compute: one panel per quality column, each (setting, dataset, variant) a point at its mean
    NFEs (log scale) and its mean of that column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    keys = [*settings, "dataset", "variant"]
    means = frame.groupby(keys, sort=False, dropna=False)[[NFE, *metrics]].mean().reset_index()
    figure, axes = plt.subplots(1, len(metrics), squeeze=False, figsize=(3.8 * len(metrics), 3.4))
    for axis, metric in zip(axes[0], metrics):
        axis.scatter(means[NFE], means[metric], color=BLUE)
        for _, row in means.iterrows():
            label = " / ".join([*(f"{c}={row[c]}" for c in settings), str(row["variant"])])
            axis.annotate(label, (row[NFE], row[metric]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_xlabel("NFEs per prompt (network passes, CFG counted)", fontsize=7)
        axis.set_title(METRIC_LABELS.get(metric, metric), fontsize=9)
        axis.tick_params(labelsize=7)
    return save_figure(figure, path)


def image_grid(frame: pd.DataFrame, run_dirs: dict[str, Path], a: str, b: str, path: Path,
               max_rows: int = 8, cell: int = 192, metric: str | None = None) -> Path | None:
    """Rows of (prompt | A | B) for up to `max_rows` prompts that have both images; with `metric`, the score
    of each side is printed under its image. None when no prompt has both images."""
    keys = ["run", "dataset", "prompt_id"]
    left = frame[(frame["variant"] == a) & frame["image"].notna()][keys + ["prompt", "image"]]
    right = frame[(frame["variant"] == b) & frame["image"].notna()][keys + ["image"]]
    pairs = left.merge(right, on=keys, suffixes=("_a", "_b")).head(max_rows)
    if pairs.empty:
        return None
    scores = paired_scores(frame, a, b, metric).set_index(keys) if metric else None
    font = ImageFont.load_default()
    text_width, header = 2 * cell, 20
    grid = Image.new("RGB", (text_width + 2 * cell, header + len(pairs) * (cell + 16)), "white")
    draw = ImageDraw.Draw(grid)
    draw.text((text_width + cell // 2 - 20, 4), a, fill=BLUE, font=font)
    draw.text((text_width + cell + cell // 2 - 20, 4), b, fill=ORANGE, font=font)
    for row, pair in enumerate(pairs.itertuples(index=False)):
        top = header + row * (cell + 16)
        wrapped = textwrap.fill(f"[{pair.dataset} #{pair.prompt_id}] {pair.prompt}", width=44)
        draw.multiline_text((6, top + 6), "\n".join(wrapped.splitlines()[:12]), fill="black", font=font)
        for column, relative in enumerate((pair.image_a, pair.image_b)):
            with Image.open(run_dirs[pair.run] / relative) as image:
                tile = ImageOps.contain(image.convert("RGB"), (cell, cell), Image.BICUBIC)
            grid.paste(tile, (text_width + column * cell + (cell - tile.width) // 2, top))
        if scores is not None and (pair.run, pair.dataset, pair.prompt_id) in scores.index:
            found = scores.loc[(pair.run, pair.dataset, pair.prompt_id)]
            for column, value in enumerate((found["a"], found["b"])):
                draw.text((text_width + column * cell + 4, top + cell + 2), f"{metric}={value:.4f}", fill="black",
                          font=font)
    buffer = io.BytesIO()
    grid.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return path
