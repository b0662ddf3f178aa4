"""The paper's algorithms (selection.py: Alg. 1, optimization.py: Alg. 2) and the `method` config group."""
from noise_exp.methods.method import (Baseline, Method, MethodOutput, NoiseOptimization, NoiseSelection,
                                      SelectThenOptimize, Variant)
from noise_exp.methods.optimization import OptimizationConfig, OptimizationResult, optimize_noise
from noise_exp.methods.selection import SelectionResult, select_noise

__all__ = ["Baseline", "Method", "MethodOutput", "NoiseOptimization", "NoiseSelection", "SelectThenOptimize",
           "Variant", "OptimizationConfig", "OptimizationResult", "optimize_noise", "SelectionResult", "select_noise"]
