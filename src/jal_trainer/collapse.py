"""Collapse guard: warn when a model predicts one class for (nearly) a whole evaluation set.

Bounded robust losses (NCE+RCE, SCE, JAL with a large ``a``) can settle on the constant
prediction: on WRENCH trec with majority-vote labels, four losses predicted one class for every
test row (``recipes/results/cpu_table.md``). The accuracy then equals the share of the largest
class and nothing else in the logs says why. `JALTrainer` counts the predicted classes of every
evaluation and calls :func:`collapse_message`; a message becomes a :class:`CollapseWarning`.

Example:
    >>> import numpy as np
    >>> collapse_message(np.array([97, 3]), np.array([50, 50]), "jal-ce (alpha 1, beta 1, a 30)") is not None
    True
    >>> collapse_message(np.array([60, 40]), np.array([50, 50]), "ce") is None
    True
"""

from __future__ import annotations

import numpy as np

#: Share of the evaluation rows predicted as one class from which the model counts as collapsed.
COLLAPSE_SHARE = 0.95
#: Below this many rows an evaluation set is too small to call anything a collapse.
MIN_ROWS = 20


class CollapseWarning(UserWarning):
    """The model predicts one class for at least 95% of an evaluation set."""


def collapse_message(predicted: np.ndarray, labels: np.ndarray, loss: str, *, share: float = COLLAPSE_SHARE,
                     split: str = "evaluation") -> str | None:
    """The warning text when one class takes ``share`` of the predictions, else None.

    Args:
        predicted: ``(K,)`` count of rows predicted as each class.
        labels: ``(K,)`` count of rows labelled as each class in the same set; a set whose own
            labels are that lopsided is not a collapse.
        loss: the loss and its parameters, as the message names them.
        share: the fraction of rows in one predicted class that counts as a collapse.
    """
    total = int(predicted.sum())
    if total < MIN_ROWS or len(predicted) < 2:
        return None
    top = int(np.argmax(predicted))
    top_share = predicted[top] / total
    label_share = labels[top] / max(int(labels.sum()), 1)
    if top_share < share or label_share >= share:
        return None
    return (
        f"The model predicts class {top} for {top_share:.1%} of the {total} {split} rows (that class is "
        f"{label_share:.1%} of their labels): it has collapsed to one class. Likely causes: {_parameter_cause(loss)}"
        "too few epochs for the model to leave the constant prediction (train longer or raise the learning rate; "
        "early in fine-tuning this passes), or label noise that is not clean-label dominant (most labels of a "
        "class are another class: see noise_report.json), where no robust loss can recover the classes."
    )


#: Losses without a parameter that can pin the model to the constant prediction (CE, focal loss).
_UNBOUNDED = ("ce", "focal")


def _parameter_cause(loss: str) -> str:
    """The loss's parameters as a cause, worded for its family ('' for CE and focal loss).

    Example:
        >>> _parameter_cause("ce")
        ''
    """
    name = loss.split(" ")[0].lower()
    if name in _UNBOUNDED:
        return ""
    amse = "with AdamW a large AMSE a dominates the gradient: " if "jal" in name or name == "amse" else ""
    return f"the loss's parameters ({loss}; {amse}try loss_preset='finetune' or loss_type='auto'), "


def describe_loss(loss: object) -> str:
    """``"jal-ce (alpha 1, beta 1, a 30)"`` for a library loss, the class name otherwise."""
    name = getattr(loss, "name", None) or type(loss).__name__
    params = getattr(loss, "hparams", None) or {}
    return f"{name} ({', '.join(f'{k} {v:g}' for k, v in params.items())})" if params else str(name)


__all__ = ["COLLAPSE_SHARE", "CollapseWarning", "collapse_message", "describe_loss"]
