"""Model adapters: each wraps a diffusion pipeline as the map eps -> x0 -> eps'."""
from noise_exp.models.base import Conditioning, NoiseModel
from noise_exp.models.stable_diffusion import StableDiffusionModel, StableDiffusionXLModel

__all__ = ["Conditioning", "NoiseModel", "StableDiffusionModel", "StableDiffusionXLModel"]
