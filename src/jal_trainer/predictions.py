"""Logits and probabilities of a trainer or a plain model on a data set, in data-set order.

`trainer_logits` reuses ``Trainer.predict`` (its collator, every process, the last batch's padding
dropped); `model_logits` is the one-process path for a plain ``nn.Module`` outside a Trainer.

Example:
    >>> import numpy as np
    >>> softmax(np.array([[0.0, 0.0]])).tolist()
    [[0.5, 0.5]]
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, computed stably in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


@contextmanager
def labelled_prediction_bar(trainer: Any, desc: str) -> Iterator[None]:
    """Give the progress bar of the ``trainer.predict`` calls inside this block a label, and drop it when done.

    ``transformers.ProgressCallback`` draws an unlabelled prediction bar; nested under the training
    bar, a pass over the training set each epoch would read as a stray evaluation. Here the bar says
    what it counts and is cleared when the pass ends (``leave=False``). Without a
    ``ProgressCallback`` (``disable_tqdm=True``) nothing changes.
    """
    from tqdm.auto import tqdm
    from transformers.trainer_callback import ProgressCallback
    from transformers.trainer_utils import has_length

    progress = [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, ProgressCallback)]
    for callback in progress:
        step = callback.on_prediction_step

        def on_prediction_step(args, state, control, eval_dataloader=None, _cb=callback, _step=step, **kwargs):
            # start the bar before ProgressCallback would start its own (it only creates one when none is open)
            if state.is_world_process_zero and _cb.prediction_bar is None and has_length(eval_dataloader):
                _cb.prediction_bar = tqdm(total=len(eval_dataloader), desc=desc, leave=False, dynamic_ncols=True)
            return _step(args, state, control, eval_dataloader=eval_dataloader, **kwargs)

        callback.on_prediction_step = on_prediction_step  # this instance only, undone below
    try:
        yield
    finally:
        for callback in progress:
            del callback.on_prediction_step



@contextmanager
def same_random_state() -> Iterator[None]:
    """Run a block and put the Python, NumPy and torch (CPU and CUDA) generators back as they were."""
    import torch

    python, numpy_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python)
            np.random.set_state(numpy_state)


@contextmanager
def in_dataset_order(trainer: Any) -> Iterator[None]:
    """Make the ``trainer.predict`` calls inside this block return rows in data-set order.

    With ``train_sampling_strategy="group_by_length"`` transformers (5.x, ``Trainer._get_eval_sampler``)
    also groups the *evaluation* rows by length, so ``predict`` returns them permuted: harmless for
    a metric, wrong for per-row scores such as label issues. The strategy is switched off for the
    block (the training sampler, already built, is not touched) and put back after.
    """
    strategy = getattr(trainer.args, "train_sampling_strategy", None)
    if strategy != "group_by_length":
        yield
        return
    trainer.args.train_sampling_strategy = "random"  # for evaluation: SequentialSampler (or the sharded default)
    try:
        yield
    finally:
        trainer.args.train_sampling_strategy = strategy

def trainer_logits(trainer: Any, dataset: Any, *, desc: str = "Predicting the training set") -> np.ndarray:
    """(N, K) logits of ``trainer.model`` on ``dataset``, in dataset order, gathered over processes.

    Uses ``trainer.predict``: sequential sampler (also under ``group_by_length``: `in_dataset_order`),
    padding of the last batch dropped, so every process gets all N rows. Its progress bar reads ``desc``
    and is cleared when done. Pass the rows without augmentation (e.g.
    ``DeviceImageDataset.without_augmentation()``). (`JALTrainer` starts every evaluation loop
    from zero, so this pass does not leak into the loss parts of the next logged evaluation.)
    """
    with labelled_prediction_bar(trainer, desc), in_dataset_order(trainer):
        output = trainer.predict(dataset, metric_key_prefix="label_issues")
    if output.predictions is None:
        raise ValueError("trainer.predict returned no logits: set prediction_loss_only=False in the arguments.")
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    logits = np.asarray(logits)
    if logits.ndim != 2 or len(logits) != len(dataset):
        raise ValueError(
            f"trainer.predict returned logits of shape {logits.shape} for {len(dataset)} rows; expected (N, K). "
            "Use a classification model whose output is (batch, num_classes) logits."
        )
    return logits


def model_logits(model: Any, dataset: Any, *, batch_size: int = 256, collate_fn: Any = None,
                 exclude: tuple[str, ...] = ()) -> np.ndarray:
    """(N, K) logits of a plain ``nn.Module`` (or transformers model) on ``dataset``, one process.

    The columns passed to ``forward`` are those it names (all numeric columns if it takes
    ``**kwargs``), minus labels, the analysis columns of `JALConfig` (``clean_label``,
    ``is_noisy``, ``index``) and ``exclude``.
    """
    import torch
    from torch.utils.data import DataLoader

    from jal_trainer.trainer import logits_of

    params = inspect.signature(model.forward).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    from jal_trainer.config import DEFAULT_ANALYSIS_COLUMNS

    skip = {"label", "labels", *DEFAULT_ANALYSIS_COLUMNS, *exclude}
    features = dataset.features
    columns = [c for c in dataset.column_names
               if c not in skip and (c in params or (takes_any and _is_numeric(features[c])))]
    if not columns:
        raise ValueError(
            f"None of the dataset columns {dataset.column_names} is an argument of {type(model).__name__}.forward. "
            "Name the forward arguments after the input columns (e.g. input_ids, pixel_values, embeddings)."
        )
    data = dataset.select_columns(columns)
    if collate_fn is None:
        data = data.with_format("torch")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None else torch.float32

    def to_model(value: Any) -> Any:
        # Arrow stores python floats as float64: feed floating inputs in the model's own dtype
        if isinstance(value, torch.Tensor):
            return value.to(device, dtype=dtype if value.is_floating_point() else value.dtype)
        return value

    was_training = model.training
    model.eval()
    chunks = []
    try:
        with torch.no_grad():
            for batch in DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate_fn):
                batch = {k: to_model(v) for k, v in batch.items()}
                chunks.append(logits_of(model(**batch)).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(chunks, axis=0)


def _is_numeric(feature: Any) -> bool:
    """True for a numeric (or bool, or class-label) feature, or nested lists / arrays of one."""
    while hasattr(feature, "feature"):  # List / Sequence / LargeList
        feature = feature.feature
    dtype = getattr(feature, "dtype", None)
    return dtype is not None and dtype not in ("string", "large_string", "binary", "large_binary")


__all__ = ["in_dataset_order", "labelled_prediction_bar", "model_logits", "softmax", "trainer_logits"]
