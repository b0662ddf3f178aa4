"""Model builders: each writes a model folder the adapters load, deterministically from its `seed`.

A model config's `builder` is one of them (`noise_exp.builders.base.PipelineBuilder`): `models.loading.load_pipeline`
calls it when the configured folder does not exist yet. The tiny random-weight models live here; the two trained
worlds' builders (`noise_exp.training.digits`, `noise_exp.training.shapes`) follow the same pattern and train on
first use.
"""
