"""A stand-in task for launcher tests: writes one file per job and returns a value.

Run with the project's launcher configs on the search path:
    python app.py -m hydra.searchpath=[file://<repo>/conf] hydra/launcher=slurm_local x=1,2,3
"""
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> int:
    out = Path(HydraConfig.get().runtime.output_dir)
    (out / "done.txt").write_text(f"{cfg.x} {os.environ.get('SLURM_JOB_ID', '')}\n")
    return cfg.x * 10


if __name__ == "__main__":
    main()
