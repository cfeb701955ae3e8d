"""Is one model really better than another on the same examples, or is it validation noise?

Two quantized variants scored on a few hundred validation examples differ by a point or two
by chance alone. A decision that costs bytes (keeping a layer in float) is taken only when the
gain it buys passes a one-sided paired test on the same examples:

- a metric that is a mean over examples (accuracy, MAE, ...): the sign test on the per-example
  differences (scipy's exact binomial test; for 0/1 hits this is McNemar's exact test);
- any other metric (AUC, R², a user function): a paired bootstrap of the metric's difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from .metrics import Metric

__all__ = ["PairedTest", "paired_gain"]

#: Bootstrap resamples for metrics that are not means over examples.
BOOTSTRAP_ROUNDS = 500


@dataclass(frozen=True)
class PairedTest:
    """``gain`` is how much better ``a`` scores than ``b`` (metric units, positive = better);
    ``p_value`` the one-sided chance of a gain at least this large if the two were equal."""

    gain: float
    p_value: float
    n: int
    method: str
    alpha: float

    @property
    def significant(self) -> bool:
        """The gain is positive and unlikely to be noise at level ``alpha``."""
        return self.gain > 0 and self.p_value < self.alpha

    def describe(self, metric: Metric) -> str:
        """E.g. ``"+0.40 pts, p = 0.31 (sign test, 500 examples): within noise"``."""
        verdict = "significant" if self.significant else "within noise"
        return (
            f"{metric.format_change(self.gain)} {metric.change_unit}, p = {self.p_value:.3g} "
            f"({self.method}, {self.n} examples): {verdict}"
        )


def paired_gain(
    metric: Metric,
    outputs_a: np.ndarray,
    outputs_b: np.ndarray,
    labels: np.ndarray,
    inputs: np.ndarray | None = None,
    *,
    alpha: float = 0.05,
    seed: int = 0,
) -> PairedTest:
    """Test whether the model that produced ``outputs_a`` beats the one behind ``outputs_b`` on
    the same examples (``labels``, ``inputs``) by ``metric``."""
    n = len(labels)
    # How much worse b is than a: positive when a is better, whichever way the metric points.
    gain = metric.worse_by(
        metric.score(outputs_a, labels, inputs), metric.score(outputs_b, labels, inputs)
    )
    a = metric.per_example(outputs_a, labels, inputs)
    b = metric.per_example(outputs_b, labels, inputs)
    if a is not None and b is not None:
        diff = a - b
        better, worse = int(np.sum(diff > 0)), int(np.sum(diff < 0))
        if better + worse == 0:
            return PairedTest(gain, 1.0, n, "sign test", alpha)
        p = float(binomtest(better, better + worse, 0.5, alternative="greater").pvalue)
        return PairedTest(gain, p, n, "sign test", alpha)
    rng = np.random.default_rng(seed)
    x = None if inputs is None else np.asarray(inputs)
    at_most_zero = 0
    for _ in range(BOOTSTRAP_ROUNDS):
        idx = rng.integers(0, n, n)
        xi = None if x is None else x[idx]
        try:
            sa = metric.score(outputs_a[idx], labels[idx], xi)
            sb = metric.score(outputs_b[idx], labels[idx], xi)
        except Exception:  # a resample without both classes (AUC) says nothing either way
            at_most_zero += 1
            continue
        if metric.worse_by(sa, sb) <= 0:  # a not better than b in this resample
            at_most_zero += 1
    p = (at_most_zero + 1) / (BOOTSTRAP_ROUNDS + 1)
    return PairedTest(gain, p, n, f"paired bootstrap, {BOOTSTRAP_ROUNDS} rounds", alpha)
