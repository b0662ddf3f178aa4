"""Training the project's own models: the shared loop pieces (`common`), then one module per model.

`python -m noise_exp.training.digits` trains `model=small_digits`, `python -m noise_exp.training.shapes` the two
shapes-world models, `python -m noise_exp.training.shapes_reward` the shapes world's learned reward. The diffusion
models' builders (the `builder` of their model configs) train on a folder's first use.
"""
