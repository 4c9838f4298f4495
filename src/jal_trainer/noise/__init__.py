"""Label noise: transition matrices, samplers, instance-dependent noise and Theorem 4.1.

A NumPy core with no dependency on transformers, datasets or torch, so that it works in a
plain training loop and tests in milliseconds; :mod:`jal_trainer.noisy_datasets` is the thin
``datasets`` layer on top. One module per concept, every name importable from here:

* :mod:`~jal_trainer.noise.matrices`: :func:`transition_matrix` of the named kinds, CIFAR class tables;
* :mod:`~jal_trainer.noise.samplers`: :func:`corrupt_labels` (the paper's exact sampler, or i.i.d.);
* :mod:`~jal_trainer.noise.instance`: :func:`instance_dependent_labels` (PDN, Xia et al. 2020);
* :mod:`~jal_trainer.noise.weak`: :func:`majority_vote` of labelling functions;
* :mod:`~jal_trainer.noise.labels`: :func:`make_noisy_labels`, one entry point for arrays;
* :mod:`~jal_trainer.noise.theorem`: :func:`min_admissible_a` and :func:`check_a` (Theorem 4.1);
* :mod:`~jal_trainer.noise.report`: :func:`realised_transition_matrix`, :class:`NoiseReport`.

Conventions, used everywhere in this package:

* ``T`` is a ``(K, K)`` row-stochastic transition matrix, ``T[i, j] = P(noisy j | true i)``:
  **each row sums to one** (``T.sum(axis=1) == 1``).
* Labels are integer arrays of shape ``(n,)`` with values in ``[0, K)``.
* Randomness comes only from an explicit ``seed``: an ``int`` or a ``numpy.random.Generator``.
  No global random state is read or written.

Example:
    >>> import numpy as np
    >>> from jal_trainer.noise import transition_matrix, corrupt_labels, min_admissible_a
    >>> T = transition_matrix("symmetric", 0.8, 10)
    >>> clean = np.repeat(np.arange(10), 5000)
    >>> noisy = corrupt_labels(clean, T, seed=0)
    >>> float((noisy != clean).mean())
    0.7992
    >>> round(min_admissible_a(T), 6)
    9.0
"""

from __future__ import annotations

from jal_trainer.noise._checks import Kind, Seed, _rng  # noqa: F401  (_rng: kept importable from here)
from jal_trainer.noise.instance import instance_dependent_labels
from jal_trainer.noise.labels import make_noisy_labels
from jal_trainer.noise.matrices import (
    CIFAR10_CLASSES,
    CIFAR100_FINE_LABELS,
    CIFAR100_SUPERCLASSES,
    NOISE_KINDS,
    _normalise_kind,  # noqa: F401  (kept importable from here)
    cifar100_superclass_groups,
    transition_matrix,
)
from jal_trainer.noise.report import NoiseReport, noise_report_from_labels, realised_transition_matrix
from jal_trainer.noise.samplers import SAMPLERS, corrupt_labels
from jal_trainer.noise.theorem import check_a, min_admissible_a
from jal_trainer.noise.weak import TIE_BREAKS, majority_vote, tied_rows


__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR100_FINE_LABELS",
    "CIFAR100_SUPERCLASSES",
    "NOISE_KINDS",
    "SAMPLERS",
    "Kind",
    "NoiseReport",
    "Seed",
    "check_a",
    "cifar100_superclass_groups",
    "corrupt_labels",
    "instance_dependent_labels",
    "majority_vote",
    "tied_rows",
    "TIE_BREAKS",
    "make_noisy_labels",
    "min_admissible_a",
    "noise_report_from_labels",
    "realised_transition_matrix",
    "transition_matrix",
]
