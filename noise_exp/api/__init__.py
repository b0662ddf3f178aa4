"""noise_exp as a library: choose, optimize or search the starting noise of your own diffusers pipeline.

    import noise_exp as nx
    choice = nx.select(pipe, prompt, num_seeds=16, num_inference_steps=10, guidance_scale=2.0)
    image = pipe(prompt, latents=choice.latents, num_inference_steps=10, guidance_scale=2.0).images[0]

See docs/api.md. Every function wraps the pipeline with the project's adapters and calls the functions the Hydra
runner's methods call.
"""
from noise_exp.api.choose import select, stability
from noise_exp.api.optimize import optimize, reward_opt
from noise_exp.api.pipelines import SUPPORTED
from noise_exp.api.results import BestOfN, Choice, Optimized, RewardOptimized
from noise_exp.api.search import best_of_n

__all__ = ["select", "optimize", "best_of_n", "reward_opt", "stability", "Choice", "Optimized", "BestOfN",
           "RewardOptimized", "SUPPORTED"]
