"""Epoch-mean word probabilities of a token run: what the token label issues are scored with.

A model trained for many epochs on noisy tags ends up predicting them (it memorises them), so its
final probabilities hardly tell a wrong tag from a right one. The mean over epochs of the
in-sample probabilities is the training-dynamics remedy the sequence task already uses
(`jal_trainer.callbacks.EpochProbabilitiesCallback`); `EpochWordProbabilitiesCallback` extends it
to words:

- at every epoch end it predicts on the aligned training sentences (``trainer.predict``, a
  collective: every process calls it and receives all sentences, so their means agree);
- it keeps the softmax probabilities of each word's first sub-token
  (`jal_trainer.ner.align.word_predictions`), NaN for the words cut off by ``max_length``;
- it adds them to a running sum of one float32 row per word, ``(W, K)`` for W training words
  (never the ``(N, L, K)`` sub-token logits, which are dropped after each pass).

The pass runs with the random generators saved and restored (`same_random_state`): a DataLoader
draws a seed from the global generator each time it is iterated, so without this the extra pass
would change the next epoch's shuffling and dropout, and the model would differ from a run
without the callback.

File: ``epoch_word_probabilities.npz`` (format of `jal_trainer.epoch_state`, rows = words) in the
output directory after each epoch and in each checkpoint, so a resumed run goes on averaging.

Example:
    >>> callback = EpochWordProbabilitiesCallback(aligned_train, [len(t) for t in words["tokens"]])  # doctest: +SKIP
    >>> trainer = JALTrainer(model, args, train_dataset=train, callbacks=[callback])  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP
    >>> callback.word_mean()[0].shape  # (words of sentence 0, K)  # doctest: +SKIP
    (9, 9)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jal_trainer.callbacks import EpochProbabilitiesCallback
from jal_trainer.predictions import same_random_state  # noqa: F401  (re-exported)

EPOCH_WORD_PROBABILITIES = "epoch_word_probabilities.npz"
# what the model reads; `labels` is left out so that the pass computes no loss and no training-set metrics
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def word_indices(aligned: Any) -> list[np.ndarray]:
    """Per sentence, the word of each sub-token (-1 off first sub-tokens): the ``word_index`` column, read at once."""
    if "word_index" not in aligned.column_names:
        raise ValueError(f"the aligned data set has no word_index column (columns: {aligned.column_names}); build it "
                         "with jal_trainer.ner.align.align_labels.")
    return list(aligned.with_format("numpy", columns=["word_index"])[:]["word_index"])


def word_probabilities(logits: np.ndarray, index: Sequence[np.ndarray], lengths: Sequence[int]) -> np.ndarray:
    """``(W, K)`` float32 softmax of each word's first sub-token, sentences one after the other; NaN rows for cut words.

    Args:
        logits: ``(N, L, K)`` padded sub-token logits (``trainer.predict``).
        index: per sentence, the word of each sub-token (`word_indices`).
        lengths: per sentence, its number of words (W = their sum).

    Example:
        >>> word_probabilities(np.zeros((1, 3, 2)), [np.array([-1, 0, -1])], [2]).tolist()
        [[0.5, 0.5], [nan, nan]]
    """
    from jal_trainer.ner.align import word_predictions

    words = np.concatenate(word_predictions(logits, index, lengths))
    shifted = np.exp(words - words.max(axis=1, keepdims=True))  # NaN rows stay NaN
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


class EpochWordProbabilitiesCallback(EpochProbabilitiesCallback):
    """Predict on the aligned training sentences every epoch; keep the mean word probabilities over epochs.

    Args:
        aligned: the training sentences as `jal_trainer.ner.align.align_labels` returns them (model
            inputs and ``word_index``), in the order of the word-level data set.
        lengths: per sentence, its number of words (truncation included).
        trainer: leave it out with a `JALTrainer`, which hands itself over.
        output_dir: where to write ``epoch_word_probabilities.npz`` (default ``args.output_dir``).
        save: write that file.

    **Cost:** one forward pass over the training sentences per epoch (about a third of a training
    epoch) and W x K float32 numbers (200,000 words x 9 tags: 7 MB).
    """

    file_name = EPOCH_WORD_PROBABILITIES

    def __init__(self, aligned: Any, lengths: Sequence[int], *, trainer: Any = None,
                 output_dir: str | Path | None = None, save: bool = True) -> None:
        self.word_index = word_indices(aligned)
        self.lengths = [int(n) for n in lengths]
        if len(self.lengths) != len(aligned):
            raise ValueError(f"lengths has {len(self.lengths)} sentences but the aligned data set {len(aligned)}; pass "
                             "the word counts of the same training sentences, in the same order.")
        inputs = [c for c in MODEL_INPUTS if c in aligned.column_names]
        super().__init__(aligned.select_columns(inputs), trainer=trainer, output_dir=output_dir, save=save)

    def _num_rows(self) -> int:
        return sum(self.lengths)

    def _epoch_pass(self) -> tuple[np.ndarray, np.ndarray]:
        """(W, K) word probabilities of the current model, and the (N, L, K) logits they come from."""
        from jal_trainer.predictions import in_dataset_order, labelled_prediction_bar

        bar = labelled_prediction_bar(self.trainer, "Predicting the training words")
        with same_random_state(), bar, in_dataset_order(self.trainer):
            output = self.trainer.predict(self.dataset, metric_key_prefix="label_issues")
        logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        return word_probabilities(np.asarray(logits), self.word_index, self.lengths), logits

    def word_mean(self) -> list[np.ndarray]:
        """Per sentence, the ``(num_words, K)`` mean over the epochs seen of the word probabilities (NaN: cut words)."""
        return np.split(self.mean_probabilities, np.cumsum(self.lengths)[:-1])


__all__ = ["EPOCH_WORD_PROBABILITIES", "EpochWordProbabilitiesCallback", "same_random_state", "word_indices",
           "word_probabilities"]
