"""MemorisationCallback: real JALTrainer runs of a tiny plain module on a synthetic noisy data set.

Run as a script under ``torchrun --nproc_per_node 2`` it trains the same model on two processes
and rank 0 writes the callback's rows and its own single-process recount to a JSON file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from torch import nn
from transformers import TrainerCallback, TrainerState

from jal_trainer import JALConfig, JALTrainer
from jal_trainer.callbacks import (
    EpochProbabilitiesCallback,
    MemorisationCallback,
    memorisation_callback_for,
    memorisation_fractions,
)
from jal_trainer.label_issues import find_label_issues

NUM_FEATURES, NUM_CLASSES = 8, 3


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(NUM_FEATURES, 32), nn.ReLU(), nn.Linear(32, NUM_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_split(n: int, noise: float, seed: int) -> Dataset:
    """Gaussian clusters; a fraction `noise` of the labels moved to the next class."""
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, NUM_CLASSES, n)
    centres = np.random.default_rng(99).normal(0, 2.0, (NUM_CLASSES, NUM_FEATURES))
    x = centres[clean] + rng.normal(0, 1.0, (n, NUM_FEATURES))
    flip = rng.random(n) < noise
    label = np.where(flip, (clean + 1) % NUM_CLASSES, clean)
    return Dataset.from_dict({"x": x.astype(np.float32).tolist(), "label": label.tolist(),
                              "clean_label": clean.tolist(), "is_noisy": flip.tolist()})


def accuracy(eval_pred) -> dict[str, float]:
    return {"accuracy": float((eval_pred.predictions.argmax(-1) == eval_pred.label_ids).mean())}


def train(out: str, train_size: int = 203, epochs: int = 2, **overrides) -> tuple[JALTrainer, MemorisationCallback]:
    torch.manual_seed(0)
    train_set, test_set = make_split(train_size, 0.3, seed=1), make_split(90, 0.0, seed=2)
    settings = dict(output_dir=out, num_train_epochs=epochs, per_device_train_batch_size=16,
                    per_device_eval_batch_size=32, learning_rate=0.05, optim="sgd", eval_strategy="epoch",
                    save_strategy="no", logging_strategy="epoch", report_to=[], use_cpu=True, seed=0,
                    disable_tqdm=True, loss_type="jal-ce", loss_preset="cifar10", dataloader_num_workers=0)
    settings.update(overrides)
    callback = MemorisationCallback(train_set)
    trainer = JALTrainer(model=TinyNet(), args=JALConfig(**settings), train_dataset=train_set, eval_dataset=test_set,
                         compute_metrics=accuracy, callbacks=[callback])
    trainer.train()
    return trainer, callback


def recount(model: nn.Module, dataset: Dataset) -> dict[str, float]:
    """Memorisation fractions counted by hand, one sample at a time, without the Trainer."""
    model.eval()
    hits = {"memorised": 0, "true": 0, "noisy": 0, "fit": 0, "clean": 0}
    with torch.no_grad():
        for row in dataset:
            pred = int(model(torch.tensor([row["x"]], dtype=torch.float32)).argmax())
            if row["label"] != row["clean_label"]:
                hits["noisy"] += 1
                hits["memorised"] += pred == row["label"]
                hits["true"] += pred == row["clean_label"]
            else:
                hits["clean"] += 1
                hits["fit"] += pred == row["label"]
    return {"noisy_memorised": hits["memorised"] / hits["noisy"], "noisy_true": hits["true"] / hits["noisy"],
            "clean_fit": hits["fit"] / hits["clean"]}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[JALTrainer, MemorisationCallback, Path]:
    out = tmp_path_factory.mktemp("memorisation")
    trainer, callback = train(str(out))
    return trainer, callback, out


def test_rows_are_written_once_per_epoch_with_valid_fractions(run) -> None:
    trainer, callback, out = run
    rows = json.loads((out / "memorisation.json").read_text())["rows"]
    assert [r["epoch"] for r in rows] == [1.0, 2.0]
    assert rows == callback.rows
    for row in rows:
        for key in ("noisy_memorised", "noisy_true", "clean_fit", "test_accuracy"):
            assert 0.0 <= row[key] <= 1.0
        assert row["noisy_memorised"] + row["noisy_true"] <= 1.0 + 1e-12
        assert row["seconds"] > 0


def test_last_row_matches_a_recount_with_the_final_model(run) -> None:
    trainer, callback, _ = run
    expected = recount(trainer.model, callback.dataset)
    for key, value in expected.items():
        assert callback.rows[-1][key] == pytest.approx(value)


def test_test_accuracy_is_the_evaluation_of_the_same_epoch(run) -> None:
    trainer, callback, _ = run
    evals = {h["epoch"]: h["eval_accuracy"] for h in trainer.state.log_history if "eval_accuracy" in h}
    assert {r["epoch"]: r["test_accuracy"] for r in callback.rows} == evals


def test_prediction_pass_does_not_leak_into_the_logged_eval_loss_parts(run) -> None:
    trainer, _, _ = run
    last_eval = [h for h in trainer.state.log_history if "eval_loss_active" in h][-1]
    test = trainer.eval_dataset
    with torch.no_grad():
        logits = trainer.model(torch.tensor(test["x"], dtype=torch.float32))
        active, _ = trainer.loss_fn.parts(logits, torch.tensor(test["label"]))
    assert last_eval["eval_loss_active"] == pytest.approx(active.mean().item(), rel=1e-4)


def test_png_is_written(run) -> None:
    _, _, out = run
    png = (out / "memorisation.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_accuracy_logged_before_the_callback_is_read_from_the_history(run) -> None:
    """The other order of events: evaluation already logged at this epoch when on_epoch_end runs."""
    trainer, callback, out = run
    other = MemorisationCallback(callback.dataset, trainer=trainer, output_dir=out / "other", plot=False)
    state = TrainerState(epoch=3.0, log_history=[{"epoch": 2.0, "eval_accuracy": 0.1},
                                                 {"epoch": 3.0, "eval_accuracy": 0.625}])
    other.on_epoch_end(trainer.args, state, trainer.control)
    assert other.rows[-1]["test_accuracy"] == 0.625
    # a later evaluation of the same epoch does not overwrite it
    other.on_evaluate(trainer.args, state, trainer.control, metrics={"eval_accuracy": 0.2})
    assert other.rows[-1]["test_accuracy"] == 0.625


def test_without_per_epoch_evaluation_the_final_test_evaluation_fills_the_last_row(tmp_path: Path) -> None:
    """`jal train` evaluates with prefix test_ after training; with eval_strategy='no' that is the only accuracy."""
    trainer, callback = train(str(tmp_path), train_size=60, eval_strategy="no")
    assert [r["test_accuracy"] for r in callback.rows] == [None, None]
    assert (tmp_path / "memorisation.png").is_file()
    metrics = trainer.evaluate(metric_key_prefix="test")
    rows = json.loads((tmp_path / "memorisation.json").read_text())["rows"]
    assert [r["test_accuracy"] for r in rows] == [None, metrics["test_accuracy"]]


class SoftmaxRecorder(TrainerCallback):
    """Independent check: the softmax of the model on the training rows at every epoch end, by hand."""

    def __init__(self, model: nn.Module, dataset: Dataset) -> None:
        self.model, self.x, self.per_epoch = model, torch.tensor(dataset["x"], dtype=torch.float32), []

    def on_epoch_end(self, args, state, control, **kwargs) -> None:
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            self.per_epoch.append(torch.softmax(self.model(self.x).double(), dim=1).numpy())
        self.model.train(was_training)


def test_epoch_probabilities_are_the_mean_of_every_epochs_softmax(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = make_split(150, 0.3, seed=1)
    model = TinyNet()
    args = JALConfig(output_dir=str(tmp_path), num_train_epochs=3, per_device_train_batch_size=16, learning_rate=0.05,
                     optim="sgd", save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
                     loss_type="jal-ce", loss_preset="cifar10")
    callback, recorder = EpochProbabilitiesCallback(data), SoftmaxRecorder(model, data)
    trainer = JALTrainer(model=model, args=args, train_dataset=data, callbacks=[callback, recorder])
    with pytest.raises(ValueError, match="No epoch"):
        callback.mean_probabilities
    trainer.train()
    assert callback.epochs_seen == 3 and len(recorder.per_epoch) == 3
    expected = np.mean(recorder.per_epoch, axis=0)
    np.testing.assert_allclose(callback.mean_probabilities, expected, atol=1e-6)
    # the epochs differ (the model learns), so this is not just the last epoch
    assert np.abs(recorder.per_epoch[0] - recorder.per_epoch[-1]).max() > 1e-3
    saved = np.load(tmp_path / "epoch_probabilities.npz")
    assert int(saved["epochs"]) == 3
    np.testing.assert_allclose(saved["sum"] / 3, expected, atol=1e-6)
    # find_label_issues takes the callback and scores its averaged probabilities
    result = find_label_issues(callback, data)
    np.testing.assert_allclose(result.probs, callback.mean_probabilities)
    assert result.report is not None and 0.0 <= result.report["f1"] <= 1.0

    # resuming at the saved epoch goes on from the saved sum; one epoch earlier, the last epoch is
    # taken back out of the sum (the average is reconciled, not restarted)
    resumed = EpochProbabilitiesCallback(data, trainer=trainer)
    resumed.on_train_begin(args, TrainerState(global_step=30, epoch=3.0), trainer.control)
    assert resumed.epochs_seen == 3
    np.testing.assert_allclose(resumed.mean_probabilities, expected, atol=1e-6)
    resumed.on_train_begin(args, TrainerState(global_step=25, epoch=2.5), trainer.control)
    assert resumed.epochs_seen == 2
    np.testing.assert_allclose(resumed.mean_probabilities, np.mean(recorder.per_epoch[:2], axis=0), atol=1e-6)


def test_memorisation_callback_averages_probabilities_from_its_own_pass(run) -> None:
    _, callback, out = run
    assert callback.epochs_seen == 2
    assert (out / "epoch_probabilities.npz").is_file()
    assert callback.mean_probabilities.shape == (len(callback.dataset), NUM_CLASSES)


def test_fractions_closed_form_and_bad_inputs() -> None:
    result = memorisation_fractions(np.array([1, 0, 2, 0, 1]), np.array([1, 1, 1, 0, 1]), np.array([0, 0, 0, 0, 1]))
    # noisy rows 0, 1, 2 (given 1, true 0): predicted 1, 0, 2 -> memorised 1/3, true 1/3
    assert result == pytest.approx({"noisy_memorised": 1 / 3, "noisy_true": 1 / 3, "clean_fit": 1.0})
    assert memorisation_fractions(np.array([0]), np.array([0]), np.array([0]))["noisy_true"] is None
    with pytest.raises(ValueError, match="same shape"):
        memorisation_fractions(np.array([0, 1]), np.array([0]), np.array([0]))


def test_missing_clean_labels_are_named() -> None:
    data = Dataset.from_dict({"x": [[0.0] * NUM_FEATURES], "label": [0]})
    with pytest.raises(ValueError, match="clean_label"):
        MemorisationCallback(data)
    assert memorisation_callback_for(data) is None
    assert isinstance(memorisation_callback_for(make_split(4, 0.5, 0)), MemorisationCallback)


@pytest.mark.slow
def test_two_processes_count_every_training_sample_once(tmp_path: Path) -> None:
    """203 rows over 2 processes: the sampler pads one row; the rows must still match a full recount."""
    result_path = tmp_path / "rank0.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541",
           __file__, str(result_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(result_path.read_text())
    assert result["world_size"] == 2
    for key, value in result["recount"].items():
        assert result["rows"][-1][key] == pytest.approx(value)
    assert result["mean_probs_shape"] == [203, NUM_CLASSES] and result["mean_probs_max_diff"] < 1e-5


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        ddp_trainer, ddp_callback = train(folder, epochs=1)
        if torch.distributed.get_rank() == 0:
            written = json.loads((Path(folder) / "memorisation.json").read_text())["rows"]
            x = torch.tensor(ddp_callback.dataset["x"], dtype=torch.float32)
            with torch.no_grad():
                by_hand = torch.softmax(ddp_trainer.model.eval()(x).double(), dim=1).numpy()
            payload = {"world_size": ddp_trainer.args.world_size, "rows": written,
                       "recount": recount(ddp_trainer.model, ddp_callback.dataset),
                       # one epoch: the mean over epochs is the final model's softmax, every row once
                       "mean_probs_shape": list(ddp_callback.mean_probabilities.shape),
                       "mean_probs_max_diff": float(np.abs(ddp_callback.mean_probabilities - by_hand).max())}
            Path(sys.argv[1]).write_text(json.dumps(payload))
        torch.distributed.barrier()  # every rank done before gloo is torn down (see tests/dist_recipes.py)
        torch.distributed.destroy_process_group()


def test_the_training_set_pass_draws_a_labelled_bar_that_is_cleared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import tqdm.auto

    made, real = [], tqdm.auto.tqdm

    def recording(*args, **kwargs):
        bar = real(*args, **kwargs)
        made.append((kwargs, bar))
        return bar

    monkeypatch.setattr(tqdm.auto, "tqdm", recording)
    train(str(tmp_path), train_size=64, epochs=2, disable_tqdm=False)
    passes = [(kwargs, bar) for kwargs, bar in made if kwargs.get("desc") == "Predicting the training set"]
    assert len(passes) == 2  # one per epoch, each its own bar
    assert all(kwargs["leave"] is False and bar.n == bar.total == 2 for kwargs, bar in passes)  # 64 rows / 32
    assert "Predicting the training set" in capsys.readouterr().err


def test_the_epoch_probability_pass_leaves_training_unchanged(tmp_path: Path) -> None:
    """Same weights with or without `EpochProbabilitiesCallback` for a model WITH dropout.

    The pass's DataLoader draws a seed from the global generator; without the saved and restored
    random state, `find_label_issues: true` changed the dropout masks of every later step.
    """
    from transformers import BertConfig, BertForSequenceClassification

    rng = np.random.default_rng(0)
    rows = Dataset.from_dict({"input_ids": rng.integers(1, 30, (24, 6)).tolist(),
                              "labels": rng.integers(0, 3, 24).tolist()})

    def weights(callbacks: list) -> dict:
        torch.manual_seed(0)
        model = BertForSequenceClassification(BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1,
                                                         num_attention_heads=2, intermediate_size=32, num_labels=3,
                                                         hidden_dropout_prob=0.3))
        args = JALConfig(output_dir=str(tmp_path / str(len(callbacks))), loss_type="ce", num_train_epochs=3,
                         per_device_train_batch_size=8, learning_rate=5e-2, report_to="none", save_strategy="no",
                         use_cpu=True, disable_tqdm=True, seed=0)
        trainer = JALTrainer(model=model, args=args, train_dataset=rows, callbacks=callbacks)
        trainer.train()
        return {k: v.clone() for k, v in trainer.model.state_dict().items()}

    callback = EpochProbabilitiesCallback(rows)
    plain, watched = weights([]), weights([callback])
    assert callback.epochs_seen == 3
    assert all(torch.equal(plain[k], watched[k]) for k in plain)
