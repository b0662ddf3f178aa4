"""noise-exp entry point: `python run.py method=optimize model=sdxl` (see README)."""
import hydra
from omegaconf import DictConfig

from noise_exp.runner import run_cli


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    return run_cli(cfg)


if __name__ == "__main__":
    main()
