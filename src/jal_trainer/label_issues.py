"""Find the wrong labels of a data set from one model trained with a robust loss.

A model trained with JAL (or another robust loss) on noisy labels does not memorise the wrong
labels (see `jal_trainer.callbacks.MemorisationCallback`), so its predicted probabilities on its
*own training set* still disagree with a wrong label. Confident learning (Northcutt et al., JAIR
2021) needs out-of-fold probabilities because a cross-entropy model memorises; here a single
training is enough.

**Which probabilities.** Best: the mean over epochs of the in-sample probabilities, recorded by
`jal_trainer.callbacks.EpochProbabilitiesCallback` (or `MemorisationCallback`, which extends it)
during that one training: pass the callback to `find_label_issues`. Wrong labels that the model
fits late weigh little in that mean. The final model's probabilities (pass the trainer or the
model) work too, a little less well. Several trainings on the same rows (a list of sources, e.g.
the callbacks of a CE and a JAL-CE training, or the run ``loss_type: auto`` chose): the mean of
their probabilities; where CE is the better model (WRENCH trec, chemprot) it keeps the robust
loss from being the worst choice. Measured, with the cost, in ``recipes/results/label_issues.md``.

**The score** of an example labelled ``i`` is its *class-normalised self-confidence shortfall*
``1 - p[i] / t_i``, where ``t_i`` is the mean of ``p[i]`` over the examples labelled ``i`` (the
model's typical confidence in class ``i``, confident learning's per-class threshold). It is 1 when
the model gives the label no probability, 0 at the class's typical confidence and negative above
it; higher means more likely wrong. Dividing by ``t_i`` matters because robust losses are
unevenly confident across classes: a rare or hard class gets low ``p[i]`` on *every* example,
and ``1 - p[i]`` would rank all of its examples as suspicious.

**The ranking** (``ranking=``, `RANKINGS`): ``"shortfall"`` (default) returns that score;
``"flag-margin"`` (`flag_margin_scores`) keeps its order inside each given class but interleaves
the classes by the fraction of each class the rule flagged, ``(n_i - r - 0.5) / N_i`` for the
example at place ``r`` of class ``i`` (``N_i`` examples, ``n_i`` flagged): > 0 exactly for the
flagged examples. ``"noise-margin"`` (`noise_margin_scores`) does the same with confident
learning's estimate of each class's noise rate in place of the flagged fraction. ``"auto"`` (the
benchmark's choice, `resolve_ranking`) takes the noise margin when the model is confident enough
for those estimates to hold, else the shortfall. The shortfall interleaves classes by the model's
confidence, which on weak-supervision noise misleads in both directions (a mostly wrong class the
model is sure of, on WRENCH trec; mostly wrong classes it is timid on, on chemprot).

**Which examples are flagged** is a separate, documented rule (`RULES`):

- ``"class-balanced"`` (default): how many, then which. *How many*: in each given class ``i``,
  ``n_i`` = the examples whose class-balanced prediction ``argmax_k p[k] / t_k`` is another
  class (the model's probabilities, each measured against that class's typical confidence).
  *Which*: the ``n_i`` examples of class ``i`` with the highest score.
- ``"argmax"``: an issue when the most probable class is not the given label.
- ``"per-class-threshold"``: the off-diagonal of confident learning's *confident joint*: an
  example labelled ``i`` is counted as ``j* = argmax {p[k] : p[k] >= t_k}`` (the most probable
  class that clears its own threshold) and is an issue when such a class exists and ``j* != i``.
- ``"noise-rate"``: confident learning's "prune by class": in each given class ``i``, flag the
  ``n_i`` examples with the highest score, where ``n_i`` is the count of row ``i`` off the diagonal
  of the confident joint, or ``noise_rate * (count of class i)`` when a noise rate is passed.

Why ``class-balanced`` by default: measured, not assumed. On the committed benchmark
(``recipes/results/label_issues.md``), with the epoch-mean probabilities of one JAL-CE training it
had the best F1 of the four rules on the three sets it was chosen on (WRENCH youtube and trec, a
CIFAR-10N-worst subset) and was within 0.004 of the best on the held-out WRENCH sms. The
thresholds of confident learning were made for calibrated out-of-fold CE probabilities; a JAL
model is under-confident (NCE and AMSE do not push ``p`` to 1) and they are too strict for it
(recall 0.25 to 0.73). Plain argmax ignores how unevenly confident the model is across classes
(F1 on WRENCH trec 0.30 against 0.47 for class-balanced).

Example:
    >>> import numpy as np
    >>> # the model is timid on class 1 (p[1] <= 0.4 even where the label is right)
    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.65, 0.35], [0.95, 0.05]])
    >>> labels = np.array([0, 0, 1, 1, 1])
    >>> scores, issues = score_label_issues(probs, labels)
    >>> scores.round(2).tolist(), issues.tolist()
    ([-0.06, 0.06, -0.5, -0.31, 0.81], [False, False, False, False, True])
    >>> score_label_issues(probs, labels, rule="argmax")[1].tolist()  # flags all of class 1
    [False, False, True, True, True]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from jal_trainer.issue_scores import (
    DEFAULT_RANKING,
    DEFAULT_RULE,
    NOISE_MARGIN_POWER,
    RANKINGS,
    RULES,
    area_under_margin,
    class_balanced_probs,
    class_margin_scores,
    confident_joint,
    flag_margin_scores,
    issue_report,
    label_margins,
    label_scores,
    noise_margin_scores,
    per_class_thresholds,
    resolve_ranking,
    score_label_issues,
)
from jal_trainer.predictions import model_logits, softmax, trainer_logits

SCORE_COLUMN = "label_issue_score"
ISSUE_COLUMN = "is_label_issue"


# ---- the data-set level API (the numpy core is jal_trainer.issue_scores) -----------------------------


@dataclass
class LabelIssues:
    """Result of `find_label_issues`.

    Attributes:
        dataset: the input data set plus ``label_issue_score`` (float) and ``is_label_issue`` (bool).
        scores: (N,) ``1 - p[given] / t_given`` (`label_scores`), or with ``ranking="flag-margin"``
            `flag_margin_scores` (> 0 exactly for the flagged rows), or with ``"noise-margin"``
            `noise_margin_scores`; higher means more likely wrong.
        issues: (N,) bool flags.
        probs: (N, K) predicted probabilities used for scoring.
        rule: the flagging rule.
        report: against the clean labels (``None`` when they are unknown): precision / recall / F1
            of the flags, and AUROC / AUPRC / precision at the true number of wrong rows of the
            scores (`jal_trainer.label_quality`).
        seconds: wall time of prediction and scoring.
        labels: (N,) the given labels.
        ranking: the ranking the scores are (``"auto"`` resolved to the one it chose).
    """

    dataset: Any
    scores: np.ndarray
    issues: np.ndarray
    probs: np.ndarray
    rule: str
    report: dict[str, float] | None = None
    seconds: float = 0.0
    labels: np.ndarray | None = None
    ranking: str = DEFAULT_RANKING

    def to_cleanlab(self) -> Any:
        """A ``pandas.DataFrame`` with cleanlab's columns: ``is_label_issue``, ``label_score`` (in [0, 1],
        low = likely wrong), ``given_label``, ``predicted_label`` (`jal_trainer.cleanlab_format`)."""
        from jal_trainer.cleanlab_format import cleanlab_columns

        labels = self.labels if self.labels is not None else column_array(self.dataset, "label")
        return cleanlab_columns(self.probs, labels, scores=self.scores, issues=self.issues)


def find_label_issues(
    source: Any,
    dataset: Any,
    *,
    label_column: str = "label",
    clean_label_column: str = "clean_label",
    noisy_column: str = "is_noisy",
    rule: str = DEFAULT_RULE,
    noise_rate: float | None = None,
    ranking: str = DEFAULT_RANKING,
    batch_size: int = 256,
    collate_fn: Any = None,
    predict_dataset: Any = None,
) -> LabelIssues:
    """Score a data set's labels with a trained model and flag the likely wrong ones.

    Args:
        source: best, the `jal_trainer.callbacks.EpochProbabilitiesCallback` (or
            `MemorisationCallback`) that watched the training: its mean over epochs of the
            in-sample probabilities; or a `transformers.Trainer` (the current model, predicting
            with ``trainer.predict``: its collator, every process); or a ``torch.nn.Module`` (one
            process, columns named by ``forward``); or an (N, K) array of probabilities; or a
            list of any of these (an ensemble: the mean of their probabilities, e.g. the
            callbacks of a CE and a robust training: the better scorer on real noise, measured in
            ``recipes/results/label_issues.md``).
        dataset: a `datasets.Dataset` with the given labels in ``label_column`` and the model inputs.
        label_column: column of the given (possibly noisy) labels.
        clean_label_column: column of the true labels, if known, for the report.
        noisy_column: boolean column of known wrong labels, used when ``clean_label_column`` is absent.
        rule: flagging rule, one of `RULES` (module docstring).
        noise_rate: known noise rate for ``rule="noise-rate"``.
        ranking: the ``label_issue_score``, one of `RANKINGS`: ``"shortfall"`` (default,
            ``1 - p[given] / t_given``), ``"flag-margin"`` (`flag_margin_scores`: the same order
            inside each class, classes interleaved by their flagged fraction) or ``"noise-margin"``
            (`noise_margin_scores`: interleaved by confident learning's estimate of each class's
            noise rate) or ``"auto"`` (the noise margin when the model is confident enough for
            those estimates, else the shortfall: `resolve_ranking`; the result's ``ranking`` says
            which). The benchmark's choice (``recipes/results/label_issues.md``): the callbacks of
            a CE and a JAL-CE training at half the epochs each, with ``ranking="auto"`` (second
            example).
        batch_size, collate_fn: batching of a plain ``nn.Module``.
        predict_dataset: what the trainer or model predicts on, when not ``dataset`` itself: the
            same rows in the same order in another container, e.g. a
            `jal_trainer.data.DeviceImageDataset` (``augment=False``) for fast image batches.

    With a Trainer in a distributed run, call it on every process (``trainer.predict`` is a
    collective); every process gets the same result.

    Returns:
        `LabelIssues`: ``.dataset`` gains ``label_issue_score`` and ``is_label_issue``; ``.report``
        holds precision, recall, F1, AUROC and AUPRC when the clean labels are known;
        ``.to_cleanlab()`` gives cleanlab's columns.

    Example:
        >>> callback = EpochProbabilitiesCallback(noisy_train)  # doctest: +SKIP
        >>> trainer = JALTrainer(model, args, train_dataset=noisy_train, callbacks=[callback])  # doctest: +SKIP
        >>> trainer.train()  # doctest: +SKIP
        >>> result = find_label_issues(callback, noisy_train)  # doctest: +SKIP
        >>> result.report["f1"], result.dataset.filter(lambda r: r["is_label_issue"])  # doctest: +SKIP

        The benchmark's choice: a CE and a JAL-CE training, each at half the epochs, each watched by
        its own callback (about the cost of one full training):

        >>> found = find_label_issues([ce_callback, jal_callback], noisy_train,
        ...                           ranking="auto")  # doctest: +SKIP
    """
    if label_column not in dataset.column_names:
        raise ValueError(
            f"The dataset has no label column {label_column!r} (columns: {dataset.column_names}). "
            "Pass label_column= naming the given labels."
        )
    if ranking not in RANKINGS:  # before predicting: a trainer's pass over the data can take minutes
        raise ValueError(f"ranking={ranking!r} is unknown. Choose one of {', '.join(RANKINGS)}.")
    start = time.perf_counter()
    inputs = dataset if predict_dataset is None else predict_dataset
    probs = _probabilities(source, inputs, batch_size=batch_size, collate_fn=collate_fn,
                           exclude=(label_column, clean_label_column, noisy_column))
    labels = column_array(dataset, label_column).astype(np.int64, copy=False)
    if len(probs) != len(labels):
        raise ValueError(
            f"Got {len(probs)} predictions for {len(labels)} rows: predict_dataset must hold the same rows, in order."
        )
    ranking = resolve_ranking(probs, ranking)  # "auto" -> the ranking it stands for, recorded in the result
    scores, issues = score_label_issues(probs, labels, rule=rule, noise_rate=noise_rate, ranking=ranking)
    seconds = time.perf_counter() - start
    truly_wrong = _known_wrong(dataset, labels, clean_label_column, noisy_column)
    report = issue_report(issues, truly_wrong, scores) if truly_wrong is not None else None
    out = dataset.remove_columns([c for c in (SCORE_COLUMN, ISSUE_COLUMN) if c in dataset.column_names])
    out = with_columns(out, {SCORE_COLUMN: scores, ISSUE_COLUMN: issues})
    return LabelIssues(dataset=out, scores=scores, issues=issues, probs=probs, rule=rule, report=report,
                       seconds=seconds, labels=labels, ranking=ranking)


def with_columns(dataset: Any, columns: dict[str, np.ndarray]) -> Any:
    """``dataset`` plus ``columns`` (each ``(N,)``, in row order), without copying its other columns.

    ``Dataset.add_column`` first flattens an indices mapping (what ``shuffle``, ``select`` and
    ``train_test_split`` leave), copying every column: 14 s for 200,000 rows of 100 floats. Here
    the new values are written at the rows of the underlying table the mapping points to, added
    to that table, and the same mapping is applied again: only the new columns are built. The
    format is carried over as ``add_column`` carries it.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"x": [10, 11, 12]}).select([2, 0])
        >>> with_columns(ds, {"y": np.array([1.5, 2.5])})[:]
        {'x': [12, 10], 'y': [1.5, 2.5]}
    """
    indices = getattr(dataset, "_indices", None)  # datasets keeps the mapping here; no public accessor
    if indices is None:
        for name, values in columns.items():
            dataset = dataset.add_column(name, values)
        return dataset
    from datasets import Dataset

    rows = np.asarray(indices.column(0).to_numpy(), dtype=np.int64)  # view row r is table row rows[r]
    base = Dataset(dataset.data, info=dataset.info.copy(), split=dataset.split, fingerprint=dataset._fingerprint)
    for name, values in columns.items():
        full = np.zeros(len(dataset.data), dtype=np.asarray(values).dtype)
        full[rows] = values  # rows outside the mapping stay hidden behind it
        base = base.add_column(name, full)
    out = base.select(rows)
    # the format, as add_column transmits it: the new columns are formatted like the formatted ones
    fmt = dataset.format
    every = set(fmt["columns"]) >= set(dataset.column_names)
    out.set_format(type=fmt["type"], columns=None if every else sorted({*fmt["columns"], *columns}),
                   output_all_columns=fmt["output_all_columns"], **fmt["format_kwargs"])
    return out


def _probabilities(source: Any, dataset: Any, **kwargs: Any) -> np.ndarray:
    if isinstance(source, (list, tuple)):  # an ensemble: the mean of each source's probabilities
        if not source:
            raise ValueError("source is an empty list. Pass at least one callback, trainer, model or array.")
        return np.mean([_probabilities(s, dataset, **kwargs) for s in source], axis=0)
    if hasattr(source, "mean_probabilities"):  # EpochProbabilitiesCallback / MemorisationCallback
        source = source.mean_probabilities
    if isinstance(source, np.ndarray):
        if len(source) != len(dataset):
            raise ValueError(f"probs has {len(source)} rows but the dataset {len(dataset)}. Pass one row per example.")
        return source
    if hasattr(source, "predict") and hasattr(source, "model"):
        return softmax(trainer_logits(source, dataset))
    if hasattr(source, "forward"):
        return softmax(model_logits(source, dataset, **kwargs))
    raise ValueError(
        f"Cannot predict with a {type(source).__name__}. Pass an EpochProbabilitiesCallback (or "
        "MemorisationCallback) that watched the training, a transformers Trainer, a torch nn.Module or an (N, K) "
        "numpy array of probabilities."
    )


def _known_wrong(dataset: Any, labels: np.ndarray, clean_column: str, noisy_column: str) -> np.ndarray | None:
    if clean_column in dataset.column_names:
        return labels != column_array(dataset, clean_column).astype(np.int64, copy=False)
    if noisy_column in dataset.column_names:
        return column_array(dataset, noisy_column).astype(bool, copy=False)
    return None


def column_array(dataset: Any, column: str) -> np.ndarray:
    """One column of a `datasets.Dataset` as a numpy array, read from Arrow in one call.

    ``np.asarray(dataset[column])`` iterates row by row (seconds for 200,000 rows). A flat numeric
    or bool column is read from the Arrow table, a ``select``/``shuffle`` indices mapping applied
    with Arrow's ``take`` (milliseconds; the numpy formatter gathers it slice by slice, 2.7 s for
    200,000 shuffled rows); other columns go through the numpy format.

    Example:
        >>> from datasets import Dataset
        >>> column_array(Dataset.from_dict({"label": [2, 0, 1]}).select([2, 0]), "label").tolist()
        [1, 2]
    """
    table = getattr(dataset, "data", None)
    if hasattr(table, "column") and column in dataset.column_names:
        values = table.column(column)
        indices = getattr(dataset, "_indices", None)  # the select/shuffle mapping, taken in Arrow
        if indices is not None:
            values = values.take(indices.column(0))
        if values.null_count == 0 and (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
                                       or pa.types.is_boolean(values.type)):
            array = values.to_numpy()
            return array if array.flags.writeable else array.copy()  # zero-copy Arrow buffers are read-only
    if hasattr(dataset, "with_format"):  # nested or nullable columns: the numpy formatter
        return dataset.with_format("numpy", columns=[column])[:][column]
    return np.asarray(dataset[column])


__all__ = [
    "DEFAULT_RANKING", "DEFAULT_RULE", "ISSUE_COLUMN", "NOISE_MARGIN_POWER", "RANKINGS", "RULES", "SCORE_COLUMN",
    "LabelIssues", "area_under_margin", "class_balanced_probs", "class_margin_scores", "column_array",
    "confident_joint", "find_label_issues", "flag_margin_scores", "issue_report", "label_margins", "label_scores",
    "model_logits", "noise_margin_scores", "per_class_thresholds", "resolve_ranking", "score_label_issues", "softmax",
    "trainer_logits", "with_columns",
]
