"""noise-exp entry point: `python run.py method=optimize model=sdxl` (see README)."""
import hydra
from omegaconf import DictConfig

from noise_exp.cli import run_hydra


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from noise_exp.runner import run_cli  # imported here: --help and config errors answer before torch loads

    return run_cli(cfg)


if __name__ == "__main__":
    run_hydra(main)
