"""Cost of noise selection and optimization against the bare model (`make bench`).

Figures, not tests: seconds per candidate at batch 1 and at the best batch size, the overhead of each
method over the bare UNet calls it makes (same shapes and count, replayed in the same process), one
optimization step against one generation + inversion, peak memory, and scaling with K, T and batch.
"""
from __future__ import annotations

import csv
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from noise_exp.cli import ArgumentParser
from noise_exp.errors import exit_on_user_error
from noise_exp.methods import NoiseOptimization, NoiseSelection


@dataclass
class Row:
    experiment: str
    K: int
    T: int
    batch_size: int
    seconds: float
    unet_calls: int
    bare_unet_seconds: float
    per_candidate_s: float
    overhead: float
    peak_memory_mb: float


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class UNetRecorder:
    """Records the (input, timestep, kwargs) of every UNet call so they can be replayed bare."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.calls: list[tuple[tuple, dict]] = []
        self._handle = unet.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs) -> None:
        self.calls.append((tuple(a.detach() if torch.is_tensor(a) else a for a in args), dict(kwargs)))

    def remove(self) -> None:
        self._handle.remove()


@torch.no_grad()
def replay_bare(unet: torch.nn.Module, calls: list[tuple[tuple, dict]], device: torch.device) -> float:
    """Time the same UNet calls (same inputs, same order) with nothing around them."""
    return timed(lambda: [unet(*args, **kwargs) for args, kwargs in calls], device)[1]


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


def measure(model, cond, experiment: str, method, K: int, batch_size: int, repeats: int = 3) -> Row:
    """Best of `repeats` for the method and for the replay of its bare UNet calls (timing noise is one-sided)."""
    device = model.device
    seconds = bare = float("inf")
    for _ in range(max(1, repeats)):
        recorder = UNetRecorder(model.network)
        try:
            output, elapsed = timed(lambda: method.run(model, cond, prompt_index=0), device)
        finally:
            recorder.remove()
        seconds = min(seconds, elapsed)
        bare = min(bare, replay_bare(model.network, recorder.calls, device))
    calls = sum(v.unet_calls for v in output.variants if v.name == method.main_variant)
    return Row(experiment, K, model.num_steps, batch_size, seconds, calls, bare, seconds / max(K, 1), seconds / bare,
               peak_memory_mb(device))


def build_model(overrides: list[str]):
    from hydra.utils import instantiate

    from noise_exp.config import compose_config
    from noise_exp.runner import _quiet_libraries

    _quiet_libraries("diffusers", "transformers")
    return instantiate(compose_config(overrides).model)


def run(overrides: list[str], out_dir: Path, K: int, steps: int, batch_sizes: list[int], scaling: bool,
        repeats: int = 3) -> list[Row]:
    model = build_model(overrides)
    cond = model.encode_prompt("a photo of an astronaut riding a horse")
    model.denoise(model.draw_noise([0]), cond)  # warm-up
    rows: list[Row] = []
    for b in batch_sizes:
        rows.append(measure(model, cond, "select", NoiseSelection(num_seeds=K, batch_size=b), K, b, repeats))
        print(f"select K={K} T={model.num_steps} batch={b}: {rows[-1].per_candidate_s * 1000:.1f} ms/candidate, "
              f"overhead {rows[-1].overhead:.3f}x", flush=True)
    rows.append(measure(model, cond, "optimize", NoiseOptimization(steps=steps, lr=100.0), steps, 1, repeats))
    print(f"optimize n={steps}: {rows[-1].seconds:.2f}s, overhead {rows[-1].overhead:.3f}x", flush=True)
    noise = model.draw_noise([0])
    _, generate_invert = timed(lambda: model.invert(model.denoise(noise, cond), cond), model.device)
    rows.append(Row("generate+invert", 1, model.num_steps, 1, generate_invert, model.unet_calls_per_roundtrip, float("nan"),
                    generate_invert, float("nan"), peak_memory_mb(model.device)))
    if scaling:
        base_T = model.num_steps
        for T in sorted({max(1, base_T // 2), base_T, base_T * 2}):
            model_T = build_model(overrides + [f"model.num_steps={T}"]) if T != base_T else model
            cond_T = model_T.encode_prompt("a photo of an astronaut riding a horse")
            for k in (max(2, K // 4), max(2, K // 2), K):
                b = max(batch_sizes)
                rows.append(measure(model_T, cond_T, "scaling", NoiseSelection(num_seeds=k, batch_size=b), k, b, 1))
    write_outputs(rows, out_dir, model.describe())
    return rows


def write_outputs(rows: list[Row], out_dir: Path, model_info: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "bench.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    select = [r for r in rows if r.experiment == "select"]
    best = min(select, key=lambda r: r.per_candidate_s)
    one = next(r for r in select if r.batch_size == 1)
    opt = next(r for r in rows if r.experiment == "optimize")
    gen = next(r for r in rows if r.experiment == "generate+invert")
    step_s = opt.seconds / (opt.K + 1)
    device = model_info.get("device")
    lines = [
        "# Benchmark", "",
        f"Model: `{model_info.get('name')}` on `{device}` ({model_info.get('dtype')}, T={model_info.get('num_steps')}, "
        f"{model_info.get('height')}x{model_info.get('width')} px, guidance {model_info.get('guidance_scale')}); "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads.", "",
        "| figure | value |", "|---|---|",
        f"| selection, batch 1 | {one.per_candidate_s * 1000:.1f} ms per candidate |",
        f"| selection, best batch ({best.batch_size}) | {best.per_candidate_s * 1000:.1f} ms per candidate |",
        f"| candidates/s ratio best batch vs batch 1 | {one.per_candidate_s / best.per_candidate_s:.2f}x (target >= 3x on GPU) |",
        f"| selection overhead over bare UNet calls (batch {best.batch_size}) | {best.overhead:.3f}x (target <= 1.05x) |",
        f"| optimization overhead over bare UNet calls | {opt.overhead:.3f}x (target <= 1.05x) |",
        f"| one optimization step vs one generation + inversion | {step_s:.3f}s vs {gen.seconds:.3f}s ({step_s / gen.seconds:.2f}x) |",
        f"| peak memory ({'max allocated' if str(device).startswith('cuda') else 'RSS'}) | {max(r.peak_memory_mb for r in rows):.0f} MB |",
        "", "Cost model: selection = K x 2T UNet calls (x1.5 with CFG in the denoise half only), optimization = (n+1) x 2T "
        "calls in the paper's detached mode (no backward through the model).", "",
        "| experiment | K | T | batch | seconds | UNet calls | bare UNet s | overhead |", "|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r.experiment} | {r.K} | {r.T} | {r.batch_size} | {r.seconds:.2f} | {r.unet_calls} | "
              f"{r.bare_unet_seconds:.2f} | {r.overhead:.3f} |" for r in rows]
    (out_dir / "bench.md").write_text("\n".join(lines) + "\n")
    _plot(rows, out_dir / "bench.png")
    print("\n".join(lines[4:11]))
    print(f"written: {out_dir / 'bench.csv'}, {out_dir / 'bench.md'}, {out_dir / 'bench.png'}")


def _plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    select = [r for r in rows if r.experiment == "select"]
    axes[0].plot([r.batch_size for r in select], [1 / r.per_candidate_s for r in select], marker="o")
    axes[0].set(xlabel="batch size", ylabel="candidates / s", title="selection throughput")
    for T in sorted({r.T for r in rows if r.experiment == "scaling"}):
        pts = [r for r in rows if r.experiment == "scaling" and r.T == T]
        axes[1].plot([r.K for r in pts], [r.seconds for r in pts], marker="o", label=f"T={T}")
    axes[1].set(xlabel="K (candidates)", ylabel="seconds", title="selection cost vs K and T")
    if any(r.experiment == "scaling" for r in rows):
        axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="make bench", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", default=[], help="Hydra overrides for the model, e.g. model=sdxl")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench"))
    parser.add_argument("--K", type=int, default=16, help="candidates per selection")
    parser.add_argument("--steps", type=int, default=8, help="optimization steps")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--no-scaling", action="store_true", help="skip the K x T scaling table")
    parser.add_argument("--repeats", type=int, default=3, help="best-of repeats per measurement")
    args = parser.parse_args(argv)
    overrides = args.overrides or ["model=tiny_sdxl"]
    run(overrides, args.out, args.K, args.steps, args.batch_sizes, not args.no_scaling, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
