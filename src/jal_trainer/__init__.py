"""jal-trainer: train Hugging Face classifiers on noisy labels with the Joint Asymmetric Loss.

The public names are imported lazily (PEP 562) so that ``jal_trainer.losses`` and
``jal_trainer.noise`` stay usable in a plain PyTorch / NumPy program without paying for
the transformers and datasets imports.

Example:
    >>> from jal_trainer import build_loss
    >>> loss = build_loss("jal-ce", preset="cifar10")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "build_loss": "jal_trainer.losses",
    "LOSS_NAMES": "jal_trainer.losses",
    "PRESETS": "jal_trainer.losses",
    "JALConfig": "jal_trainer.config",
    "JALTrainer": "jal_trainer.trainer",
    "make_compute_loss_func": "jal_trainer.trainer",
    "transition_matrix": "jal_trainer.noise",
    "min_admissible_a": "jal_trainer.noise",
    "check_a": "jal_trainer.noise",
    "NoiseReport": "jal_trainer.noise",
    "add_label_noise": "jal_trainer.noisy_datasets",
    "noise_report": "jal_trainer.noisy_datasets",
    "MemorisationCallback": "jal_trainer.callbacks",
    "EpochProbabilitiesCallback": "jal_trainer.callbacks",
    "find_label_issues": "jal_trainer.label_issues",
    "select_loss": "jal_trainer.auto",
    "LossSelection": "jal_trainer.auto",
    "CollapseWarning": "jal_trainer.collapse",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from jal_trainer.config import JALConfig
    from jal_trainer.losses import LOSS_NAMES, PRESETS, build_loss
    from jal_trainer.callbacks import EpochProbabilitiesCallback, MemorisationCallback
    from jal_trainer.label_issues import find_label_issues
    from jal_trainer.noise import NoiseReport, check_a, min_admissible_a, transition_matrix
    from jal_trainer.noisy_datasets import add_label_noise, noise_report
    from jal_trainer.trainer import JALTrainer, make_compute_loss_func
    from jal_trainer.auto import LossSelection, select_loss
    from jal_trainer.collapse import CollapseWarning


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # cache: the next access skips __getattr__
        return value
    raise AttributeError(f"module 'jal_trainer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
