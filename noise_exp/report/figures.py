"""Figures of the report: winning-rate bars (the paper's Figures 3 and 5) and A-next-to-B image grids
(Figures 4 and 6)."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
from PIL import Image, ImageDraw, ImageFont, ImageOps

from noise_exp.files import atomic_write_bytes
from noise_exp.report.tables import METRIC_LABELS, NFE

BLUE, ORANGE = "#1f77b4", "#ff7f0e"  # the paper's colours: blue = side A, orange = side B


def save_figure(figure, path: Path, dpi: int = 120, tight: bool = True) -> Path:
    """A matplotlib figure as a PNG file, written atomically; the figure is closed."""
    import matplotlib.pyplot as plt

    if tight:
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
    NFEs (log scale) and its mean of that column: colour = variant (and dataset), marker = setting, named in a
    legend beside the panels (labels never cover the points or leave the figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.lines import Line2D

    keys = [*settings, "dataset", "variant"]
    means = frame.groupby(keys, sort=False, dropna=False)[[NFE, *metrics]].mean().reset_index()
    several = means["dataset"].nunique() > 1
    means["series"] = [f"{d} / {v}" if several else str(v) for d, v in zip(means["dataset"], means["variant"])]
    means["setting"] = [" ".join(f"{c}={row[c]}" for c in settings) for _, row in means.iterrows()]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {name: colours[i % len(colours)] for i, name in enumerate(dict.fromkeys(means["series"]))}
    markers = "osD^vP*X<>h"
    marker = {name: markers[i % len(markers)] for i, name in enumerate(dict.fromkeys(means["setting"]))}
    width = 3.4 * len(metrics)
    figure, axes = plt.subplots(1, len(metrics), squeeze=False, figsize=(width + 2.6, 3.4))
    for axis, metric in zip(axes[0], metrics):
        shown = means[means[metric].notna() & means[NFE].notna()]  # e.g. stability of methods that never invert
        for _, row in shown.iterrows():
            axis.scatter(row[NFE], row[metric], color=colour[row["series"]], marker=marker[row["setting"]], s=28,
                         alpha=0.85)
        if len(shown) and (shown[NFE] > 0).all():  # NFEs span orders of magnitude
            axis.set_xscale("log")
            axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.margins(x=0.2, y=0.12)
        axis.set_xlabel("NFEs per prompt (network passes, CFG counted)", fontsize=7)
        axis.set_title(METRIC_LABELS.get(metric, metric), fontsize=9)
        axis.tick_params(labelsize=7)
    handles = [Line2D([], [], color=c, marker="o", linestyle="", label=name) for name, c in colour.items()]
    if settings:
        handles += [Line2D([], [], color="grey", marker=m, linestyle="", label=name) for name, m in marker.items()]
    figure.legend(handles=handles, loc="center right", fontsize=6, frameon=False)
    figure.tight_layout(rect=(0, 0, width / (width + 2.6), 1))
    return save_figure(figure, path, tight=False)


@dataclass(frozen=True)
class GridRow:
    """One prompt of an image grid: its one-line caption, the two images and the lines printed under each."""

    prompt: str
    image_a: Path
    image_b: Path
    caption_a: tuple[str, ...]
    caption_b: tuple[str, ...]


def grid_rows(frame: pd.DataFrame, run_dirs: dict[str, Path], a: str, b: str, metrics: Sequence[str],
              max_rows: int = 8, prompt_chars: int = 90) -> list[GridRow]:
    """The first `max_rows` prompts with both images: `[dataset #id] prompt` (cut to `prompt_chars`), and under
    each image `stability 0.9512` and every metric's score (`digit_classifier 0.9991`)."""
    keys = ["run", "dataset", "prompt_id"]
    columns = [c for c in ("stability", *metrics) if c in frame.columns]
    left = frame[(frame["variant"] == a) & frame["image"].notna()][keys + ["prompt", "image", *columns]]
    right = frame[(frame["variant"] == b) & frame["image"].notna()][keys + ["image", *columns]]
    pairs = left.merge(right, on=keys, suffixes=("_a", "_b")).head(max_rows)
    rows = []
    for pair in pairs.to_dict("records"):
        prompt = f"[{pair['dataset']} #{pair['prompt_id']}] {' '.join(str(pair['prompt']).split())}"
        if len(prompt) > prompt_chars:
            prompt = prompt[: prompt_chars - 1] + "…"
        captions = [tuple(f"{METRIC_LABELS.get(c, c)} {_score(pair[f'{c}_{side}'])}"
                          for c in columns) for side in ("a", "b")]
        rows.append(GridRow(prompt, run_dirs[pair["run"]] / pair["image_a"], run_dirs[pair["run"]] / pair["image_b"],
                            *captions))
    return rows


def _score(value: object) -> str:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    return "-" if number != number else f"{number:.4f}"


def _tile(path: Path, cell: int) -> Image.Image:
    """An image at least `cell` px on its long side: small ones upscaled by a whole factor, nearest neighbour (pixels
    stay sharp), large ones reduced to fit `cell`."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        side = max(image.size)
        if side < cell:
            factor = -(-cell // side)
            return image.resize((image.width * factor, image.height * factor), Image.NEAREST)
        return ImageOps.contain(image, (cell, cell), Image.LANCZOS)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def image_grid(frame: pd.DataFrame, run_dirs: dict[str, Path], a: str, b: str, path: Path,
               max_rows: int = 8, cell: int = 256, metrics: Sequence[str] = ()) -> Path | None:
    """Rows of [one prompt line; A | B, each image at least `cell` px with its stability and every metric's score
    under it] for up to `max_rows` prompts that have both images. None when no prompt has both images."""
    rows = grid_rows(frame, run_dirs, a, b, metrics, max_rows)
    if not rows:
        return None
    font, bold, pad, line = _font(13), _font(15), 6, 16
    tiles = [(_tile(row.image_a, cell), _tile(row.image_b, cell)) for row in rows]
    width = max(cell, *(t.width for pair in tiles for t in pair))
    height = max(cell, *(t.height for pair in tiles for t in pair))
    captions = max(len(row.caption_a) for row in rows)
    block = line + pad + height + pad + captions * line + 2 * pad
    header = line + 2 * pad
    grid = Image.new("RGB", (2 * width + 3 * pad, header + len(rows) * block), "white")
    draw = ImageDraw.Draw(grid)
    for column, (name, colour) in enumerate(((a, BLUE), (b, ORANGE))):
        draw.text((pad + column * (width + pad) + width // 2, pad), name, fill=colour, font=bold, anchor="ma")
    for index, (row, pair) in enumerate(zip(rows, tiles)):
        top = header + index * block
        draw.text((pad, top), row.prompt, fill="black", font=font)
        for column, (tile, caption) in enumerate(zip(pair, (row.caption_a, row.caption_b))):
            left = pad + column * (width + pad)
            grid.paste(tile, (left + (width - tile.width) // 2, top + line + pad + (height - tile.height) // 2))
            for k, text in enumerate(caption):
                draw.text((left + 2, top + line + 2 * pad + height + k * line), text, fill="black", font=font)
        if index:
            draw.line((0, top - pad, grid.width, top - pad), fill="#dddddd")
    buffer = io.BytesIO()
    grid.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return path
