"""Training the project's own small models: the shared loop pieces (`common`), then one module per world.

`python -m noise_exp.training.digits` trains `model=small_digits`, `python -m noise_exp.training.shapes` the two
shapes-world models. Each world's builder (the `builder` of its model config) trains on a folder's first use.
"""
