"""Paired bootstrap over evaluation units (scenes, sequences) for metrics that pool counts: a metric is
sum(numerators) / sum(denominators) over the units (F1 = 2tp / (2tp + fp + fn), a rate = events / frames),
so a draw of units with replacement is a weight per unit and the metric of a draw is a weighted ratio.
Used by pmp_ros.eval.ablation (two models, the same scenes) and pmp_ros.eval.tracking (two outputs, the same
sequences).
"""

from __future__ import annotations

import numpy as np


def unit_draws(units: int, resamples: int, seed: int = 0) -> np.ndarray:
    """float [resamples, units]: how often each unit is drawn in each resample (each row sums to units)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(units, np.full(units, 1 / units), size=resamples).astype(np.float64)


def pooled(weights: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The pooled metric per row of weights [B, U] from per-unit counts [U, 2] (numerator, denominator) ->
    float [B] (nan where the drawn denominators sum to 0)."""
    numerator, denominator = weights @ counts[:, 0], weights @ counts[:, 1]
    return np.divide(numerator, denominator, out=np.full_like(numerator, np.nan), where=denominator > 0)


def interval(values: np.ndarray) -> list[float]:
    """The 2.5 and 97.5 percentiles of a bootstrap distribution (nan draws left out)."""
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return [float(low), float(high)]
