"""Never lose a run: output-folder checks, resuming, and a clean stop on Ctrl-C or SIGTERM.

`jal train` calls these before it loads any data:

- `check_output_dir`: a non-empty ``output_dir`` is refused unless ``--overwrite_output_dir`` is
  given or the run resumes; the folder must be writable and have room for the model.
- `resolve_resume`: ``--resume_from_checkpoint`` as a path, or ``true`` for the last checkpoint
  of ``output_dir``.
- `InterruptCallback` with `stop_on_signals`: the first Ctrl-C (SIGINT) or SIGTERM finishes the
  current optimiser step, saves a checkpoint and raises `TrainingInterrupted`, whose message is the
  command that resumes the run; a second Ctrl-C stops at once.

Example:
    >>> from jal_trainer.run_safety import resolve_resume
    >>> resolve_resume(None, "runs/none") is None
    True
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

# Files a finished or interrupted `jal train` run writes; `--overwrite_output_dir` removes these
# (and the checkpoints) so that no stale file of the old run is left mixed in with the new one.
RUN_FILES = (
    "model.safetensors", "config.json", "recipe.yaml", "versions.json", "noise_report.json", "metrics.json",
    "trainer_state.json", "training_args.bin", "memorisation.json", "memorisation.png", "epoch_probabilities.npz",
    "label_issues.json", "label_issues.csv", "README.md", "learning_curve.png", "report.md",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "all_results.json",
    "train_results.json", "eval_results.json",
)  # fmt: skip
MIN_FREE_BYTES = 50 * 2**20  # logs, records and checkpoint metadata beside the weights
_BYTES_PER_PARAM = 4  # float32 weights
_PROBE = ".jal-write-check-"  # the temporary file of the writability check (other processes may see it)


class TrainingInterrupted(RuntimeError):
    """Training stopped on Ctrl-C or SIGTERM after saving a checkpoint; the message says how to resume."""

    def __init__(self, message: str, checkpoint: str | None = None, exit_code: int = 130) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.exit_code = exit_code


# ---- output folder ----------------------------------------------------------------------------------


def resolve_resume(resume: str | bool | None, output_dir: str | os.PathLike[str]) -> str | None:
    """The checkpoint folder to resume from, or None.

    Args:
        resume: ``--resume_from_checkpoint``: a checkpoint path, ``"true"``/``True`` for the last
            ``checkpoint-*`` of ``output_dir``, or ``None``/``"false"``.
        output_dir: the run's output folder.

    Raises:
        FileNotFoundError: the path does not exist, or ``true`` finds no checkpoint.
    """
    if resume is None or resume is False or str(resume).strip().lower() in ("", "false", "no", "0", "none"):
        return None
    if resume is True or str(resume).strip().lower() in ("true", "yes", "1", "last"):
        last = get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None
        if last is None:
            raise FileNotFoundError(
                f"--resume_from_checkpoint true found no {PREFIX_CHECKPOINT_DIR}-* folder in "
                f"{os.fspath(output_dir)!r}. "
                "Pass the output_dir of the interrupted run, or a checkpoint path."
            )
        return last
    path = Path(os.path.expanduser(str(resume)))
    if not path.is_dir():
        raise FileNotFoundError(
            f"--resume_from_checkpoint {os.fspath(resume)!r} is not a folder. Pass a {PREFIX_CHECKPOINT_DIR}-N folder "
            "of an earlier run, or true for the last one in output_dir."
        )
    return str(path)


def check_output_dir(output_dir: str | os.PathLike[str] | None, *, overwrite: bool, resuming: bool,
                     needed_bytes: int = 0, clear: bool = True) -> Path:
    """Refuse to write over a run, and fail now if the folder is not writable or too full.

    Args:
        output_dir: where the run writes.
        overwrite: ``--overwrite_output_dir``: an existing run's files and checkpoints are removed.
        resuming: the run resumes from a checkpoint (its folder is expected to be non-empty).
        needed_bytes: bytes the run will write (model weights and checkpoints).
        clear: with ``overwrite``, remove the earlier run's files (the main process only).

    Returns:
        The output folder (created).

    Raises:
        FileExistsError: a non-empty folder, neither overwritten nor resumed.
        PermissionError: the folder cannot be written.
        OSError: not enough free space.
    """
    if not output_dir:
        raise ValueError("output_dir is empty. Set --output_dir to the folder where the run is written.")
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output_dir {os.fspath(out)!r} is a file. Pass a folder path to --output_dir.")
    if out.is_dir() and any(not p.name.startswith(_PROBE) for p in out.iterdir()) and not (overwrite or resuming):
        raise FileExistsError(
            f"output_dir {os.fspath(out)!r} is not empty (it holds an earlier run). Pass another --output_dir, "
            "--overwrite_output_dir true to replace it, or --resume_from_checkpoint true to continue it."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=_PROBE):
            pass
    except OSError as err:
        raise PermissionError(
            f"output_dir {os.fspath(out)!r} is not writable ({err.strerror or err}). Choose a folder you can write "
            "to with --output_dir."
        ) from err
    free = shutil.disk_usage(out).free
    if free < needed_bytes + MIN_FREE_BYTES:
        raise OSError(
            f"output_dir {os.fspath(out)!r} has {free / 2**20:.0f} MiB free but the run needs about "
            f"{(needed_bytes + MIN_FREE_BYTES) / 2**20:.0f} MiB (model, checkpoints, records). Free some space or "
            "choose another --output_dir."
        )
    if overwrite and not resuming and clear:
        clear_run(out)
    return out


def prepare_output_dir(args: TrainingArguments, model: str) -> str | None:
    """`jal train`'s checks before loading data; returns the checkpoint to resume from, or None.

    Reads ``args.output_dir``, ``args.resume_from_checkpoint`` and ``args.overwrite_output_dir``.
    Only the main process removes an overwritten run's files.
    """
    resume = resolve_resume(args.resume_from_checkpoint, args.output_dir)
    check_output_dir(args.output_dir, overwrite=bool(getattr(args, "overwrite_output_dir", False)),
                     resuming=resume is not None, needed_bytes=needed_bytes(model_num_params(model), args),
                     clear=args.process_index == 0)
    return resume


def clear_run(out: Path) -> None:
    """Remove the files and checkpoints an earlier `jal train` run left in ``out`` (nothing else)."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for checkpoint in out.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        if checkpoint.is_dir():
            shutil.rmtree(checkpoint)


def model_num_params(model: str) -> int:
    """Parameter count of a recipe's ``model`` without loading weights (0 when it cannot be told).

    Vision models are built on the meta device; a local checkpoint is measured by its weight files.
    """
    from jal_trainer.arguments import VISION_MODELS
    from jal_trainer.paths import resolve_path

    if model in VISION_MODELS:
        import torch

        from jal_trainer.models import build_vision_model

        with torch.device("meta"):
            built = build_vision_model(model, num_labels=100)
        return sum(p.numel() for p in built.parameters())
    path = resolve_path(model)
    if path.is_dir():
        files = [*path.glob("*.safetensors"), *path.glob("pytorch_model*.bin")]
        return sum(f.stat().st_size for f in files) // _BYTES_PER_PARAM
    return 0


def needed_bytes(num_params: int, args: TrainingArguments) -> int:
    """Bytes a run writes: the final weights, plus checkpoints (weights and optimiser state) when it saves.

    Example:
        >>> from transformers import TrainingArguments
        >>> needed_bytes(1000, TrainingArguments("o", save_strategy="no"))
        4000
    """
    weights = num_params * _BYTES_PER_PARAM
    if str(getattr(args.save_strategy, "value", args.save_strategy)) == "no":
        return weights
    kept = args.save_total_limit or 3  # checkpoints kept at once (an estimate when unlimited)
    return weights + kept * 3 * weights  # weights + optimiser moments per checkpoint


# ---- interruption ------------------------------------------------------------------------------------


class InterruptCallback(TrainerCallback):
    """Turn a Ctrl-C or SIGTERM into "save a checkpoint, then stop" at the next safe point.

    A stop mid-epoch happens after the current optimiser step. A stop on an epoch's last step waits
    for the epoch's end (its per-epoch passes and evaluation), so that a resumed run repeats nothing
    and misses nothing. The checkpoint is saved by the Trainer itself (``control.should_save``); the
    callback then raises `TrainingInterrupted` from ``on_save``, so it must be the last callback.
    """

    def __init__(self, command: Sequence[str] | None = None) -> None:
        self.command = list(command) if command is not None else None
        self.signal_number: int | None = None
        self._stopping = False

    def request_stop(self, signal_number: int = signal.SIGINT) -> None:
        """Ask for a stop (what the signal handler calls)."""
        self.signal_number = signal_number

    def _requested(self) -> bool:
        flag = self.signal_number is not None
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():  # every process stops at the same step
            import torch

            tensor = torch.tensor([1.0 if flag else 0.0], device="cuda" if torch.cuda.is_available() else "cpu")
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
            flag = bool(tensor.item())
        return flag

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        at_epoch_end = state.epoch is not None and abs(state.epoch - round(state.epoch)) < 1e-9
        if not at_epoch_end and self._requested():
            self._stopping = control.should_save = True

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        if not self._stopping and self._requested():
            self._stopping = control.should_save = True

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                **kwargs: Any) -> None:
        if not self._stopping:
            return
        checkpoint = str(Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        command = self.command or ["jal", "train", "--output_dir", str(args.output_dir)]
        command = [*_without_resume(command), "--resume_from_checkpoint", checkpoint]
        name = signal.Signals(self.signal_number or signal.SIGINT).name
        raise TrainingInterrupted(
            f"{name} received: stopped at step {state.global_step} (epoch {state.epoch or 0:.2f}) and saved "
            f"{checkpoint}. Resume with: {shlex.join(command)}",
            checkpoint=checkpoint, exit_code=128 + int(self.signal_number or signal.SIGINT),
        )


def _without_resume(command: list[str]) -> list[str]:
    """``command`` minus an earlier ``--resume_from_checkpoint X`` (or ``=X``)."""
    out, skip = [], False
    for arg in command:
        if skip:
            skip = False
        elif arg == "--resume_from_checkpoint":
            skip = True
        elif not arg.startswith("--resume_from_checkpoint="):
            out.append(arg)
    return out


@contextmanager
def stop_on_signals(callback: InterruptCallback) -> Iterator[InterruptCallback]:
    """Route SIGINT and SIGTERM to ``callback.request_stop`` while the block runs (main thread only).

    A second Ctrl-C while a stop is pending raises `KeyboardInterrupt` at once.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield callback
        return

    def handler(number: int, frame: Any) -> None:
        if callback.signal_number is not None and number == signal.SIGINT:
            raise KeyboardInterrupt
        callback.request_stop(number)
        print(f"\n{signal.Signals(number).name}: saving a checkpoint after this step, then stopping "
              "(Ctrl-C again to stop at once).", flush=True)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield callback
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


__all__ = [
    "InterruptCallback",
    "TrainingInterrupted",
    "check_output_dir",
    "clear_run",
    "model_num_params",
    "needed_bytes",
    "prepare_output_dir",
    "resolve_resume",
    "stop_on_signals",
]
