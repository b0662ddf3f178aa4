"""Helpers of the human_eval tests: a synthetic run folder and the real server on a free port."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pandas as pd
import uvicorn
from PIL import Image

from noise_exp.human_eval.label_app import build_app

VARIANT_COLOURS = {
    "stable": (30, 160, 60),
    "unstable": (200, 40, 40),
    "original": (40, 60, 200),
    "optimized": (230, 200, 30),
    "baseline": (120, 120, 120),
}


def make_run(folder: Path, n_prompts: int = 4, variants=("stable", "unstable", "original", "optimized"),
             dataset: str = "drawbench") -> Path:
    """A run folder: one small solid-colour PNG per prompt and variant and a results.csv pointing at them."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for prompt_id in range(n_prompts):
        for variant in variants:
            image = f"images/{prompt_id}_{variant}.png"
            colour = tuple(min(255, c + 5 * prompt_id) for c in VARIANT_COLOURS[variant])
            Image.new("RGB", (48, 48), colour).save(folder / image)
            rows.append({
                "dataset": dataset, "prompt_id": prompt_id, "prompt": f"a photo of object number {prompt_id}",
                "variant": variant, "seed": prompt_id, "stability": 0.9, "image": image, "noise": "",
                "time_s": 0.1,
            })
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    return folder



class LiveServer:
    """uvicorn serving the real app (pairs and labels) in a background thread, on a socket bound to a free port."""

    def __init__(self, folder: Path, token: str | None = None):
        app, self.pair_set, self.items, self.store = build_app(folder, token=token)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> "LiveServer":
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
