"""Never lose a run: a used output folder is refused, a killed run resumes to the same result.

Every run is the packaged quickstart (digits, cnn8) cut to 256 training rows and a few epochs of
8 steps, so a run takes a few seconds.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from jal_trainer import cli
from jal_trainer import train as train_module
from jal_trainer.epoch_state import restore, save
from jal_trainer.recipes import recipe_path
from jal_trainer.run_safety import check_output_dir, resolve_resume

RECIPE = recipe_path("quickstart")
EPOCHS = 4
STEPS_PER_EPOCH = 8  # 256 rows / batch 32


def argv(out: Path, *extra: str) -> list[str]:
    return ["train", "--config", str(RECIPE), "--output_dir", str(out), "--num_train_epochs", str(EPOCHS),
            "--train_subset", "256", "--test_subset", "100", "--per_device_train_batch_size", "32",
            "--disable_tqdm", "true", *extra]


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_run(a: Path, b: Path) -> None:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    assert (a / "label_issues.csv").read_bytes() == (b / "label_issues.csv").read_bytes()


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("full") / "run"
    assert cli.main(argv(out)) == 0
    return out


def test_a_second_run_into_the_same_folder_is_refused_and_the_first_is_intact(
        full_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = digest(full_run)
    assert cli.main(argv(full_run, "--loss_type", "ce")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not empty" in err and "--overwrite_output_dir" in err
    assert "Traceback" not in err
    assert digest(full_run) == before


def test_abbreviated_flags_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv(tmp_path / "o", "--loss_typ", "ce")) == 2
    assert "--loss_typ" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_overwrite_replaces_the_run_and_its_stale_checkpoints(full_run: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(full_run, out)
    (out / "checkpoint-5").mkdir()
    (out / "notes.txt").write_text("mine")
    assert cli.main(argv(out, "--overwrite_output_dir", "true", "--num_train_epochs", "1",
                         "--find_label_issues", "false")) == 0
    assert not (out / "checkpoint-5").exists() and not (out / "label_issues.csv").exists()
    assert (out / "notes.txt").read_text() == "mine"  # not a file of a run: left alone


def test_sigterm_saves_a_checkpoint_and_the_resumed_run_equals_the_uninterrupted_one(
        full_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "cut"
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()),
           "PYTHONPATH": os.pathsep.join([str(Path(cli.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "jal_trainer.cli", *argv(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "memorisation.json").is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)  # until the first epoch has ended; three more are left
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    command = shlex.split(err.rsplit("Resume with: ", 1)[1].strip())
    assert command[:2] == ["jal", "train"] and "--resume_from_checkpoint" in command
    assert not (out / "model.safetensors").exists()
    assert cli.main(command[1:]) == 0
    assert_same_run(out, full_run)


class _SignalAt(TrainerCallback):
    """Send SIGINT to this process at the end of one optimiser step, like a user's Ctrl-C."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("step", [STEPS_PER_EPOCH, STEPS_PER_EPOCH + 3], ids=["epoch-end", "mid-epoch"])
def test_ctrl_c_at_an_epoch_end_or_mid_epoch_resumes_to_the_same_run(
        step: int, full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    original = train_module._callbacks
    monkeypatch.setattr(train_module, "_callbacks", lambda *a: [*original(*a), _SignalAt(step)])
    out = tmp_path / "cut"
    assert cli.main(argv(out)) == 128 + signal.SIGINT
    assert "Resume with:" in capsys.readouterr().err
    monkeypatch.setattr(train_module, "_callbacks", original)
    assert cli.main(argv(out, "--resume_from_checkpoint", "true")) == 0
    assert_same_run(out, full_run)


def test_a_checkpoint_saved_on_an_epochs_last_step_redoes_the_missed_pass(full_run: Path, tmp_path: Path) -> None:
    """save_steps on the epoch's last step saves before the epoch-end pass; the resume redoes that pass."""
    import shutil

    saved = tmp_path / "saved"
    assert cli.main(argv(saved, "--save_strategy", "steps", "--save_steps", str(STEPS_PER_EPOCH))) == 0
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(saved / f"checkpoint-{STEPS_PER_EPOCH}", resumed / f"checkpoint-{STEPS_PER_EPOCH}")
    assert cli.main(argv(resumed, "--resume_from_checkpoint", "true")) == 0
    assert_same_run(resumed, full_run)


def test_resume_without_a_checkpoint_and_unusable_folders_fail_before_loading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint-"):
        resolve_resume("true", tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        resolve_resume(str(tmp_path / "nope"), tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="not writable"):
        check_output_dir(blocker / "run", overwrite=False, resuming=False)
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20))
    with pytest.raises(OSError, match="MiB free"):
        check_output_dir(tmp_path / "full", overwrite=False, resuming=False, needed_bytes=10**6)


def _state(epoch: float):  # noqa: ANN202
    from transformers import TrainerState

    return TrainerState(epoch=epoch, global_step=int(epoch * STEPS_PER_EPOCH))


def test_saved_probabilities_are_reconciled_with_the_checkpoint(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    epochs = [rng.random((5, 3)).astype(np.float32) for _ in range(3)]
    run_file = tmp_path / "epoch_probabilities.npz"
    save(run_file, sum(epochs), 3, epochs[-1])
    # equal, and one epoch ahead (the checkpoint is from epoch 2): the last epoch is taken back
    assert restore(None, run_file, _state(3.0), rows=5)[1] == 3
    total, count, _ = restore(None, run_file, _state(2.5), rows=5)
    assert count == 2 and np.allclose(total, epochs[0] + epochs[1])
    # behind: kept, with a warning that the mean misses epochs
    with pytest.warns(UserWarning, match="miss those epochs"):
        assert restore(None, run_file, _state(5.0), rows=5)[1] == 3
    # two ahead cannot be stepped back
    with pytest.warns(UserWarning, match="restart"):
        assert restore(None, run_file, _state(1.0), rows=5) is None
    # the checkpoint's own copy wins
    checkpoint = tmp_path / "checkpoint-8"
    save(checkpoint / run_file.name, epochs[0], 1, epochs[0])
    assert restore(checkpoint, run_file, _state(1.0), rows=5)[1] == 1
    # another data set's file is ignored
    assert restore(None, run_file, _state(3.0), rows=6) is None


def test_two_processes_caching_one_embedding_file_do_not_collide(tmp_path: Path, monkeypatch) -> None:
    """Two ranks of a distributed run save the same cache file at once: both succeed, no temp file stays.

    The other rank's whole save is replayed inside this rank's `np.save`, the interleaving that
    made CI fail when both used one temporary name (one renamed the other's file away).
    """
    import numpy as np

    from jal_trainer import probe

    real_save, target, replayed = np.save, tmp_path / "key.npy", []

    def save_while_the_other_rank_saves(file, array, *args, **kwargs):
        real_save(file, array, *args, **kwargs)
        if not replayed:
            replayed.append(True)
            probe._save_atomic(target, array + 1)  # the other rank, which finishes first

    monkeypatch.setattr(probe.np, "save", save_while_the_other_rank_saves)
    probe._save_atomic(target, np.zeros(3, dtype=np.float32))
    assert replayed and target.exists()
    assert np.load(target).shape == (3,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.npy"]
