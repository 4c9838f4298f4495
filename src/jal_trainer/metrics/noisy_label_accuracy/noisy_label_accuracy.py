"""Noisy-label accuracy: clean accuracy, accuracy on the given noisy labels, and memorisation.

An `evaluate` metric that runs offline: load it from this file or its folder, never from the
Hub. It is self-contained (imports only numpy, datasets and evaluate) because `evaluate.load`
copies the script alone into its module cache.

Inputs (all integer class indices, shape ``(N,)``):

* ``predictions``: the predicted class of each sample (the argmax of the logits).
* ``references``: the true (clean) label of each sample. On a test split these are the clean
  test labels. Where no clean labels exist, pass the noisy labels here and read ``accuracy``
  as the accuracy on the noisy labels.
* ``noisy_references`` (optional): the given, possibly wrong, training label of each sample.
  Pass it as a keyword of ``compute``, or load the ``"noisy"`` configuration to feed it
  through ``add_batch`` as well.

Outputs:

* ``accuracy``: fraction of samples with ``prediction == reference`` (clean accuracy).
* with ``noisy_references``: ``noisy_label_accuracy``, the fraction with ``prediction ==
  noisy_reference``; and ``memorisation``, among the samples whose noisy label is wrong
  (``noisy_reference != reference``), the fraction predicted as that wrong label. It is NaN
  when no label is wrong. A noise-robust loss keeps memorisation low while accuracy rises.

Example:
    >>> import evaluate
    >>> metric = evaluate.load("src/jal_trainer/metrics/noisy_label_accuracy")  # doctest: +SKIP
    >>> metric.compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2],
    ...                noisy_references=[0, 1, 1, 0])  # doctest: +SKIP
    {'accuracy': 0.75, 'noisy_label_accuracy': 0.75, 'memorisation': 0.5}
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

_CITATION = """\
@inproceedings{wang2025jal,
  title     = {Joint Asymmetric Loss for Learning with Noisy Labels},
  author    = {Wang, Jialiang and Liu, Xianming and Zhou, Xiong and Hu, Gangfeng and Zhai, Deming
               and Jiang, Junjun and Ji, Xiangyang},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2025},
  eprint    = {2507.17692},
  archivePrefix = {arXiv},
}
"""

_DESCRIPTION = """\
Accuracy of a classifier trained on noisy labels: against the clean labels, against the given
noisy labels, and the fraction of wrongly labelled samples whose wrong label the model has
memorised.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`, shape (N,)): predicted classes.
    references (`list` of `int`, shape (N,)): clean (true) labels.
    noisy_references (`list` of `int`, shape (N,), optional): the given noisy labels.
Returns:
    accuracy (`float`): mean of predictions == references.
    noisy_label_accuracy (`float`, with noisy_references): mean of predictions == noisy_references.
    memorisation (`float`, with noisy_references): over samples with noisy_references != references,
        mean of predictions == noisy_references (NaN if there is none).
Examples:
    >>> from jal_trainer.metrics import load_metric
    >>> metric = load_metric()
    >>> metric.compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2], noisy_references=[0, 1, 1, 0])
    {'accuracy': 0.75, 'noisy_label_accuracy': 0.75, 'memorisation': 0.5}
"""

NOISY_CONFIG = "noisy"


def _as_labels(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of class indices, got shape {array.shape}; "
            "take the argmax of the logits over the class axis first."
        )
    return array.astype(np.int64, copy=False)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class NoisyLabelAccuracy(evaluate.Metric):
    """Clean accuracy, accuracy on noisy labels and memorisation of the wrong labels."""

    def _info(self) -> evaluate.MetricInfo:
        columns = {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
        if self.config_name == NOISY_CONFIG:
            columns["noisy_references"] = datasets.Value("int64")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(columns),
            reference_urls=["https://arxiv.org/abs/2507.17692"],
        )

    def _compute(self, predictions, references, noisy_references=None) -> dict[str, float]:
        pred = _as_labels(predictions, "predictions")
        clean = _as_labels(references, "references")
        if pred.shape != clean.shape:
            raise ValueError(
                f"predictions ({pred.size}) and references ({clean.size}) differ in length; "
                "pass one label per prediction."
            )
        result = {"accuracy": float((pred == clean).mean()) if pred.size else float("nan")}
        if noisy_references is None:
            return result
        noisy = _as_labels(noisy_references, "noisy_references")
        if noisy.shape != pred.shape:
            raise ValueError(
                f"noisy_references ({noisy.size}) and predictions ({pred.size}) differ in length; "
                "pass the noisy label of every predicted sample."
            )
        wrong = noisy != clean
        result["noisy_label_accuracy"] = float((pred == noisy).mean()) if pred.size else float("nan")
        result["memorisation"] = float((pred[wrong] == noisy[wrong]).mean()) if wrong.any() else float("nan")
        return result
