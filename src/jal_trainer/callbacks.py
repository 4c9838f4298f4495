"""Callbacks that predict on the training set every epoch: memorisation curves and averaged probabilities.

- `EpochProbabilitiesCallback`: one prediction pass over the training rows per epoch, keeping the
  mean of the softmax probabilities over epochs. No clean labels needed. Its ``mean_probabilities``
  are what `jal_trainer.label_issues.find_label_issues` scores best with: pass the callback itself.
- `MemorisationCallback` (extends it, same single pass): also measures how much of the wrong
  labels the model memorises, when the clean labels are known.

The callbacks live in `jal_trainer.epoch_probabilities` and `jal_trainer.memorisation`; this
module gathers them under the one import path the documentation uses.

Example:
    >>> from jal_trainer.callbacks import EpochProbabilitiesCallback, MemorisationCallback
    >>> issubclass(MemorisationCallback, EpochProbabilitiesCallback)
    True
"""

from __future__ import annotations

from jal_trainer.epoch_probabilities import EPOCH_PROBABILITIES, EpochProbabilitiesCallback
from jal_trainer.memorisation import (
    MEMORISATION_JSON,
    MEMORISATION_PNG,
    TEST_PREFIXES,
    MemorisationCallback,
    memorisation_callback_for,
    memorisation_fractions,
)

__all__ = [
    "EPOCH_PROBABILITIES",
    "MEMORISATION_JSON",
    "MEMORISATION_PNG",
    "TEST_PREFIXES",
    "EpochProbabilitiesCallback",
    "MemorisationCallback",
    "memorisation_callback_for",
    "memorisation_fractions",
]
