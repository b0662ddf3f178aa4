"""Image scorers behind one interface (see `evaluators.base.Evaluator`)."""
from evaluators.base import Evaluator

__all__ = ["Evaluator"]
