"""noise-exp: diffusion noise selection and optimization by inversion stability (Qi et al., 2024)."""
from noise_exp.config import register_resolvers
from noise_exp.errors import NoiseExpError

register_resolvers()

__all__ = ["NoiseExpError"]
__version__ = "0.1.0"
