"""A selection rule added as one module plus one yaml (conf/method/select_median.yaml): keep the candidate of median
stability. Nothing else in the project names it; tests/extending/test_add_a_method.py checks that it is wired."""
from __future__ import annotations

from noise_exp.methods.declaration import Budget, Comparison, VariantSpec
from noise_exp.methods.method import UNSTABLE, MethodOutput, NoiseSelection, Progress
from noise_exp.methods.roundtrip import ModelRoundTrip
from noise_exp.models.base import Conditioning, NoiseModel


class MedianSelection(NoiseSelection):
    """Algorithm 1's candidates, keeping the one of median stability (and the unstable one to compare with)."""

    name = "select_median"
    variants = (UNSTABLE, VariantSpec("median", "Median-stability noise", "kept"))
    comparisons = (Comparison("median", "unstable"),)
    main_variant = "median"
    sees = "stability"

    @classmethod
    def at_budget(cls, budget: Budget) -> dict[str, int]:
        """K - 1 candidates in the equal-compute study: the median's image costs one more round trip."""
        return {"num_seeds": max(1, budget.roundtrips - 1)}

    def run(self, model: NoiseModel, cond: Conditioning, prompt_index: int, progress: Progress | None = None) -> MethodOutput:
        result, seconds = self.select(model, cond, progress, prompt_index)
        middle = int(result.scores.argsort()[len(result.seeds) // 2])
        seed = result.seeds[middle]
        noise = model.draw_noise([seed])
        latents, _ = ModelRoundTrip(model, cond)(noise, [seed])  # the median's clean latents, for its image
        calls = (self.num_seeds + 1) * model.unet_calls_per_roundtrip
        unstable = result.unstable
        return MethodOutput([self.variant("median", seed, float(result.scores[middle]), noise[0], latents[0], seconds, calls),
                             self.variant("unstable", unstable.seed, unstable.stability, unstable.noise,
                                          unstable.latents, seconds, calls)],
                            selection_scores=list(zip(result.seeds, result.scores.tolist())))
