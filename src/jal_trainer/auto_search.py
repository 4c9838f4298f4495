"""The candidates' search of ``loss_type: auto``: one trial per candidate loss, run by
`transformers.Trainer.hyperparameter_search` with Optuna (trials in this process, one after the
other) or Ray Tune (trials in Ray worker processes, on this machine or on several).

Every trial leaves its result as a file in the search's scratch folder, whichever backend ran it:
``<candidate>.npy``, its probabilities on the held-out slice ``(N, K)``, or
``<candidate>.error.txt``, why it failed; a ``+clean`` candidate also ``<candidate>.flags.npz``
(`jal_trainer.auto_clean`). The caller reads them after the search
(`read_results`): a Ray trial trains a copy of the trainer in another process, so nothing it
records on the trainer object comes back. The scratch folder is a new temporary folder, inside
``auto_storage`` when that is set, removed after the search; Ray Tune's own results go to its
``ray`` subfolder, never to the run folder. With Ray on several machines, ``auto_storage`` must
be a folder every machine sees (shared storage): a trial on another machine writes there.

Example:
    >>> check_backend("optuna")
    >>> check_backend("dask")
    Traceback (most recent call last):
    ...
    ValueError: auto_backend must be optuna or ray, got 'dask'.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers import EvalPrediction
from transformers.utils import logging

from jal_trainer.atomic import atomic_target
from jal_trainer.config import CLEAN_LABEL_COLUMN, JALConfig
from jal_trainer.trainer import JALTrainer

if TYPE_CHECKING:
    from jal_trainer.auto import Candidate

logger = logging.get_logger(__name__)

#: backend -> (the module it needs, the jal-trainer extra that installs it)
BACKENDS = {"optuna": ("optuna", "auto"), "ray": ("ray.tune", "auto-ray")}
ERROR_SUFFIX = ".error.txt"


def check_backend(backend: str) -> None:
    """ValueError on an unknown backend; ImportError naming the extra to install when its package is missing."""
    if backend not in BACKENDS:
        raise ValueError(f"auto_backend must be {' or '.join(BACKENDS)}, got {backend!r}.")
    module, extra = BACKENDS[backend]
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"auto_backend={backend} needs {module} ({err}): pip install \"jal-trainer[{extra}]\", "
                          "or set auto_backend to optuna.") from None


def replace_args(args: JALConfig, **changes: Any) -> JALConfig:
    """A new `JALConfig` with ``changes`` (re-validated), every other init field copied."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(args) if f.init}
    values.update(changes)
    return JALConfig(**values)


def file_name(label: str) -> str:
    """A candidate label as a file name: ``nce+rce`` -> ``nce_rce``."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in label)


class _CandidateTrainer(JALTrainer):
    """A `JALTrainer` whose loss follows the search trial's ``loss_type`` (a candidate label).

    Each trial writes its result into ``args.output_dir`` (the scratch folder): the slice
    probabilities from `record`, or the error from `train`.
    """

    def __init__(self, *args: Any, candidates: dict[str, Candidate], **kwargs: Any) -> None:
        self.candidates = candidates
        self.current: str | None = None
        super().__init__(*args, **kwargs)
        self.compute_metrics = self.record  # a bound method: pickles into Ray's workers with the trainer

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles the trainer into its workers. After any earlier training in this process,
        # accelerate's process-wide GradientState holds weak references to old dataloaders, which do
        # not pickle: each worker builds its own accelerator instead (`__setstate__`).
        state = self.__dict__.copy()
        state.pop("accelerator", None)
        state.pop("gather_function", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.create_accelerator_and_postprocess()

    def _hp_search_setup(self, trial: Any) -> None:
        super()._hp_search_setup(trial)
        if trial is None:
            return
        candidate = self.candidates[self.args.loss_type]
        self.current = candidate.label
        for key, value in candidate.settings().items():
            setattr(self.args, key, value)
        self.loss_fn = self.args.build_loss(reduction="none")

    def train(self, *args: Any, trial: Any = None, **kwargs: Any) -> Any:
        if trial is not None:  # named now: transformers builds the model (which may fail) before `_hp_search_setup`
            self.current = trial["loss_type"] if isinstance(trial, dict) else self.hp_space(trial)["loss_type"]
        try:
            candidate = self.candidates.get(self.current or "")
            if trial is not None and candidate is not None and candidate.clean:  # detect, then retrain
                from jal_trainer.auto_clean import FLAGS_SUFFIX, train_clean_trial

                return train_clean_trial(self, lambda **kw: super(_CandidateTrainer, self).train(*args, **kw, **kwargs),
                                         trial, self._result_path(FLAGS_SUFFIX))
            return super().train(*args, trial=trial, **kwargs)
        except Exception as err:  # recorded, then re-raised for the search to mark the trial failed
            with atomic_target(self._result_path(ERROR_SUFFIX)) as tmp:
                tmp.write_text(f"{type(err).__name__}: {err}")
            raise

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        # `record` pairs the slice's probabilities with the slice's rows by position; under
        # group_by_length transformers 5 groups the evaluation rows by length too, so evaluate in order
        from jal_trainer.predictions import in_dataset_order

        with in_dataset_order(self):
            return super().evaluate(*args, **kwargs)

    def record(self, pred: EvalPrediction) -> dict[str, float]:
        """compute_metrics: save the candidate's slice probabilities; return its noisy-slice accuracy."""
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        probs = torch.softmax(torch.as_tensor(logits).float(), dim=-1).numpy()
        with atomic_target(self._result_path(".npy")) as tmp:
            np.save(tmp, probs)
        return {"noisy_slice_accuracy": float(np.mean(probs.argmax(-1) == np.asarray(pred.label_ids)))}

    def _tune_save_checkpoint(self, checkpoint_dir: str) -> None:
        """Ray Tune asks each finished trial for a checkpoint: none is kept (a candidate is never resumed,
        and copying every candidate's weights to Ray's storage would cost time and disk)."""

    def _result_path(self, suffix: str) -> Path:
        return Path(self.args.output_dir) / f"{file_name(self.current or '?')}{suffix}"


def read_results(scratch: str | os.PathLike[str], labels: list[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The trials' files in ``scratch``: (label -> slice probabilities ``(N, K)``, label -> error)."""
    probabilities, failures = {}, {}
    for label in labels:
        error, probs = Path(scratch) / f"{file_name(label)}{ERROR_SUFFIX}", Path(scratch) / f"{file_name(label)}.npy"
        if error.exists():
            failures[label] = error.read_text()
        elif probs.exists():
            probabilities[label] = np.load(probs)
    return probabilities, failures


SLICE_FILE = "loss_selection_slice.npz"


def slice_columns(train_dataset: Any, held: np.ndarray) -> dict[str, np.ndarray]:
    """The slice rows' clean labels and weak votes, where a study kept them (never read to choose)."""
    names = {CLEAN_LABEL_COLUMN: "clean", "weak_labels": "weak"}
    present = [c for c in names if c in train_dataset.column_names]
    if not present:
        return {}
    table = train_dataset.select(held).with_format("numpy", columns=present)[:]
    return {names[c]: np.asarray(table[c]) for c in present}


def write_slice_file(output_dir: str | os.PathLike[str], rows: np.ndarray, noisy: np.ndarray,
                     probabilities: dict[str, np.ndarray], extra: dict[str, np.ndarray] | None = None) -> Path:
    """Save what auto scored: the slice's ``rows`` (indices into the training set, ``(N,)``), their
    ``noisy`` labels ``(N,)`` and every candidate's slice probabilities as ``p_<label>`` ``(N, K)``.

    ``extra`` adds columns of the slice rows (``clean``, ``weak``) when the training set has them, so a
    study can judge the choice against known clean labels afterwards (``recipes/auto_slice_check.py``);
    auto itself never reads clean labels. Float16 keeps the file small (a 2,000-row slice with 10
    classes and 5 candidates: about 200 KB).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> path = write_slice_file(folder, np.array([3, 7]), np.array([0, 1]), {"ce": np.eye(2)})
        >>> sorted(np.load(path).files)
        ['noisy', 'p_ce', 'rows']
    """
    path = Path(output_dir) / SLICE_FILE
    arrays = {"rows": np.asarray(rows, dtype=np.int64), "noisy": np.asarray(noisy, dtype=np.int64),
              **{f"p_{label}": np.asarray(p, dtype=np.float16) for label, p in probabilities.items()},
              **(extra or {})}
    with atomic_target(path) as tmp:
        with open(tmp, "wb") as handle:  # np.savez on a path would append ".npz" to the temporary name
            np.savez_compressed(handle, **arrays)
    return path


def run_search(model_init: Callable, args: JALConfig, table: dict[str, Candidate], train: Any, held: Any,
               collator: Any, processing_class: Any, schedule: dict[str, float], scratch: str,
               backend: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Train and score every candidate of ``table`` in ``scratch``; return `read_results`."""
    first = next(iter(table.values()))
    candidate_args = replace_args(
        args, output_dir=scratch, eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
        push_to_hub=False, report_to="none", metric_for_best_model=None, **first.settings(), **schedule)
    candidate_args.loss_type = first.label  # the search space's value; the trainer maps it to the loss
    trainer = _CandidateTrainer(model_init=model_init, args=candidate_args, train_dataset=train, eval_dataset=held,
                                data_collator=collator, processing_class=processing_class,
                                loss=replace_args(args, **first.settings()).build_loss(reduction="none"),
                                candidates=table)
    labels = list(table)
    if backend == "optuna":
        import optuna

        space = {"sampler": optuna.samplers.GridSampler({"loss_type": labels}, seed=args.seed), "catch": (Exception,)}
        hp_space = lambda trial: {"loss_type": trial.suggest_categorical("loss_type", labels)}  # noqa: E731
    else:
        space, hp_space = _ray_options(candidate_args, scratch, labels)
    # The study ranks by noisy-slice accuracy; `decide` then corrects every candidate's score.
    logger.warning(f"auto: {len(labels)} candidates ({', '.join(labels)}); a trial's value below is its accuracy "
                   "on the noisy held-out slice, corrected for the noise before the choice.")
    trials = len(labels) if backend == "optuna" else 1  # Ray: one sample of the grid runs every candidate
    started = backend == "ray" and _start_ray(args)
    try:
        trainer.hyperparameter_search(hp_space=hp_space, n_trials=trials, direction="maximize", backend=backend,
                                      compute_objective=lambda m: float(m.get("eval_noisy_slice_accuracy", 0.0)),
                                      **space)
    except Exception as err:  # no best trial when every candidate failed: `decide` reports the failures
        if not read_results(scratch, labels)[1]:
            raise
        logger.warning(f"auto: the {backend} search ended with {type(err).__name__}: {err}")
    finally:
        if started:
            import ray

            ray.shutdown()  # the Ray this search started for itself; a cluster the user joined stays
    return read_results(scratch, labels)


def candidate_table(candidates: list[dict[str, Any]]) -> str:
    """The candidates of a `LossSelection` as aligned text: noisy-slice and estimated clean accuracy, status.

    Example:
        >>> print(candidate_table([{"label": "ce", "status": "ok", "noisy_slice_accuracy": 0.61,
        ...                         "estimated_clean_accuracy": 0.8}, {"label": "gce", "status": "failed"}]))
          candidate  noisy-slice acc.  estimated clean acc.  status
          ce                   0.6100                0.8000  ok
          gce                       -                     -  failed
    """
    def cell(row: dict[str, Any], key: str) -> str:
        return "-" if row.get(key) is None else f"{row[key]:.4f}"

    width = max(len("candidate"), *(len(row["label"]) for row in candidates))
    lines = [f"  {'candidate':<{width}}  noisy-slice acc.  estimated clean acc.  status"]
    lines += [f"  {row['label']:<{width}}  {cell(row, 'noisy_slice_accuracy'):>16}  "
              f"{cell(row, 'estimated_clean_accuracy'):>20}  {row['status']}" for row in candidates]
    return "\n".join(lines)


def _ray_options(args: JALConfig, scratch: str, labels: list[str]) -> tuple[dict[str, Any], Callable]:
    """`ray.tune.run` keywords: a grid of the candidates, one CPU (and one GPU where the run has one) per
    trial, results in ``scratch``/ray, and failed trials reported to `decide` rather than raised."""
    from ray import tune

    resources = {"cpu": 1, **({"gpu": 1} if args.n_gpu > 0 else {})}
    space = {"resources_per_trial": resources, "storage_path": str(Path(scratch).resolve() / "ray"),
             "name": "candidates", "raise_on_failed_trial": False, "verbose": 1}
    return space, (lambda _: {"loss_type": tune.grid_search(labels)})


def _start_ray(args: JALConfig) -> bool:
    """Start Ray (a local one, or join the cluster ``RAY_ADDRESS`` names) unless it runs; True if started here.

    Raises ValueError when the cluster has several machines and ``auto_storage`` is not set: the
    trials on other machines would write their results to a folder the driver never sees.
    """
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init()
    machines = sum(1 for node in ray.nodes() if node.get("Alive"))
    if machines > 1 and not args.auto_storage:
        if started:
            ray.shutdown()
        raise ValueError(f"auto_backend=ray runs on {machines} machines: set auto_storage to a folder every machine "
                         "sees (shared storage), where the candidates write their results.")
    return started


__all__ = ["BACKENDS", "SLICE_FILE", "check_backend", "read_results", "replace_args", "run_search", "slice_columns",
           "write_slice_file"]
