"""noise-exp: diffusion noise selection and optimization by inversion stability (Qi et al., 2024)."""
from noise_exp.errors import NoiseExpError

__all__ = ["NoiseExpError"]
__version__ = "0.1.0"
