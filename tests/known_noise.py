"""Probabilities whose wrong labels are known, for the label-issue tests.

Example:
    >>> probs, labels, clean, wrong = known_noise_probs(np.random.default_rng(0), 10, 3, 0.3, (0.6, 0.9))
    >>> probs.shape, bool((labels != clean).sum() == wrong.sum())
    ((10, 3), True)
"""

from __future__ import annotations

import numpy as np


def known_noise_probs(rng: np.random.Generator, n: int, k: int, noise: float,
                      confidence: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(N, K) probabilities of a model that knows the true class, and (N,) given, clean and wrong-row arrays.

    Each row puts a probability drawn uniformly from ``confidence`` on its true class and spreads
    the rest evenly; a fraction ``noise`` of the given labels is moved to another class, so the
    wrong labels are exactly the rows whose given label is not the argmax.
    """
    clean = rng.integers(0, k, n)
    conf = rng.uniform(*confidence, n)
    probs = np.tile(((1 - conf) / (k - 1))[:, None], (1, k))
    probs[np.arange(n), clean] = conf
    wrong = rng.random(n) < noise
    labels = np.where(wrong, (clean + rng.integers(1, k, n)) % k, clean)
    return probs, labels, clean, wrong
