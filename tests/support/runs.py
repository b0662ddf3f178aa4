"""Test fixtures: synthetic run folders, for tests of what reads a run folder (scoring, report, merge)."""
from __future__ import annotations

from pathlib import Path


def write_synthetic_run(folder: Path, prompts: dict[str, list[str]], variants: tuple[str, ...],
                        metrics: dict[str, dict[tuple[str, int, str], float]] | None = None,
                        image_size: int = 32, with_reference: bool = False, seed: int = 0,
                        first_prompt_id: int = 0, overrides: list[str] | None = None,
                        config: dict | None = None) -> Path:
    """A run folder as docs/CONVENTIONS.md describes it: results.csv (+ optional metric columns, keyed by
    (dataset, prompt_id, variant); a `stability` entry replaces the random stabilities) and one PNG per (prompt,
    variant). Prompt ids count from `first_prompt_id` and are unique across datasets. With `overrides` / `config`,
    the Hydra job files `.hydra/overrides.yaml` (a list of override strings) and `.hydra/config.yaml`."""
    import numpy as np
    import pandas as pd
    import yaml
    from PIL import Image

    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for name, content in (("overrides.yaml", overrides), ("config.yaml", config)):
        if content is not None:
            (folder / ".hydra").mkdir(exist_ok=True)
            (folder / ".hydra" / name).write_text(yaml.safe_dump(content))
    rows = []
    prompt_id = first_prompt_id
    for dataset, texts in prompts.items():
        for text in texts:
            for variant in variants:
                relative = f"images/{prompt_id}_{variant}.png"
                pixels = (rng.random((image_size, image_size, 3)) * 255).astype("uint8")
                Image.fromarray(pixels).save(folder / relative)
                row = {"dataset": dataset, "prompt_id": prompt_id, "prompt": text, "variant": variant,
                       "seed": int(rng.integers(0, 100)), "stability": float(rng.uniform(0.9, 1.0)),
                       "image": relative, "noise": "", "time_s": 0.1}
                if with_reference:
                    reference = f"images/{prompt_id}_reference.png"
                    if not (folder / reference).exists():
                        Image.fromarray((rng.random((image_size, image_size, 3)) * 255).astype("uint8")).save(
                            folder / reference)
                    row["reference"] = reference
                for metric, values in (metrics or {}).items():
                    row[metric] = values.get((dataset, prompt_id, variant), float("nan"))
                rows.append(row)
            prompt_id += 1
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    return folder
