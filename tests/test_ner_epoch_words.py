"""Epoch-mean word probabilities of token runs (`jal_trainer.ner.epoch_words`) and the label issues built on them.

All data are invented words written into tmp_path or built in memory; no corpus text is used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).parent))
from token_runs import TAGS, WORDS, tiny_tokenizer, word_rows, write_conll  # noqa: E402

EPOCHS = 3


def tiny_dropout_bert() -> torch.nn.Module:
    """A 1-layer BERT token classifier WITH dropout, so that a moved random state would change training."""
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=len(TAGS), hidden_dropout_prob=0.2)
    return BertForTokenClassification(config)


def aligned_rows(max_length: int) -> tuple[Any, list[int]]:
    """12 invented sentences aligned to sub-tokens (some cut by ``max_length``) and their word counts."""
    from jal_trainer.ner.align import align_labels

    rows = word_rows(num=12, seed=5)
    words = Dataset.from_dict({"tokens": [w for w, _ in rows], "ner_tags": [t for _, t in rows]})
    return align_labels(words, tiny_tokenizer(), max_length=max_length), [len(w) for w, _ in rows]


class WordProbabilityRecorder(TrainerCallback):
    """Independent reference: at each epoch end, one sentence at a time through the bare model, no Trainer."""

    def __init__(self, model: torch.nn.Module, aligned: Any, lengths: list[int]) -> None:
        self.model, self.aligned, self.lengths = model, aligned, lengths
        self.epochs: list[list[np.ndarray]] = []

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        was_training = self.model.training
        self.model.eval()
        sentences = []
        with torch.no_grad():
            for row, length in zip(self.aligned, self.lengths):
                ids = torch.tensor([row["input_ids"]])
                probs = self.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0].softmax(-1).numpy()
                words = np.full((length, len(TAGS)), np.nan)
                for position, word in enumerate(row["word_index"]):
                    if word >= 0:
                        words[word] = probs[position]
                sentences.append(words)
        self.model.train(was_training)
        self.epochs.append(sentences)


def train(tmp_path: Path, callbacks: list[Any], model: torch.nn.Module, aligned: Any, sampling: str = "random") -> Any:
    from transformers import DataCollatorForTokenClassification

    from jal_trainer import JALConfig, JALTrainer

    args = JALConfig(output_dir=str(tmp_path), loss_type="ce", num_train_epochs=EPOCHS, per_device_train_batch_size=4,
                     per_device_eval_batch_size=5, learning_rate=5e-2, report_to="none", save_strategy="no",
                     use_cpu=True, disable_tqdm=True, seed=0, train_sampling_strategy=sampling)
    trainer = JALTrainer(model=model, args=args, train_dataset=aligned.select_columns(["input_ids", "attention_mask",
                                                                                       "labels"]),
                         data_collator=DataCollatorForTokenClassification(tiny_tokenizer()), callbacks=callbacks)
    trainer.train()
    return trainer


@pytest.mark.parametrize("sampling", ["random", "group_by_length"])
def test_epoch_mean_equals_the_mean_of_each_epochs_word_probabilities(tmp_path: Path, sampling: str) -> None:
    """Also under group_by_length, which makes transformers' predict return the rows grouped by length."""
    from jal_trainer.epoch_state import _load
    from jal_trainer.ner.epoch_words import EPOCH_WORD_PROBABILITIES, EpochWordProbabilitiesCallback

    aligned, lengths = aligned_rows(max_length=6)  # [CLS] + 4 sub-tokens + [SEP]: long sentences lose words
    model = tiny_dropout_bert()
    words = EpochWordProbabilitiesCallback(aligned, lengths)
    recorder = WordProbabilityRecorder(model, aligned, lengths)
    train(tmp_path, [words, recorder], model, aligned, sampling)

    assert words.epochs_seen == len(recorder.epochs) == EPOCHS
    mean = words.word_mean()
    expected = [np.mean([epoch[s] for epoch in recorder.epochs], axis=0) for s in range(len(lengths))]
    assert [m.shape for m in mean] == [(n, len(TAGS)) for n in lengths]
    cut = np.concatenate([np.isnan(e).any(axis=1) for e in expected])
    assert cut.any() and not cut.all()  # truncation left some words without a prediction
    assert np.array_equal(np.concatenate([np.isnan(m).any(axis=1) for m in mean]), cut)
    np.testing.assert_allclose(np.concatenate(mean)[~cut], np.concatenate(expected)[~cut], atol=1e-6)
    # the epochs differ, so the mean is not simply the last epoch's probabilities
    assert np.nanmax(np.abs(np.concatenate(recorder.epochs[0]) - np.concatenate(recorder.epochs[-1]))) > 1e-3
    total, epochs, last = _load(tmp_path / EPOCH_WORD_PROBABILITIES, sum(lengths))
    assert epochs == EPOCHS and total.dtype == np.float32 and total.shape == (sum(lengths), len(TAGS))
    np.testing.assert_allclose(last[~cut], np.concatenate(recorder.epochs[-1])[~cut], atol=1e-6)



def test_token_issues_say_which_probabilities_they_used(tmp_path: Path) -> None:
    """The epoch mean when the callback saw an epoch, else the final model (in data-set order); label_issues
    names which."""
    from jal_trainer.ner.epoch_words import EpochWordProbabilitiesCallback
    from jal_trainer.ner.issues import find_token_label_issues
    from jal_trainer.ner.train import _label_issues

    rows = word_rows(num=12, seed=5)
    words = Dataset.from_dict({"tokens": [w for w, _ in rows], "ner_tags": [t for _, t in rows]})
    given = [[TAGS[t] for t in tags] for _, tags in rows]
    aligned, lengths = aligned_rows(max_length=16)
    model = tiny_dropout_bert()
    callback, recorder = (EpochWordProbabilitiesCallback(aligned, lengths),
                          WordProbabilityRecorder(model, aligned, lengths))
    trainer = train(tmp_path, [callback, recorder], model, aligned, "group_by_length")
    columns = ["input_ids", "attention_mask", "labels"]
    mean = _label_issues(trainer, aligned, words, TAGS, columns, [callback])
    final = _label_issues(trainer, aligned, words, TAGS, columns, [])
    assert mean["probabilities"] == f"epoch mean over {EPOCHS} epochs, each word's first sub-token"
    assert final["probabilities"] == "final model, each word's first sub-token"
    # the final model is the last epoch's: its issues are those of the reference's last probabilities
    expected = find_token_label_issues(recorder.epochs[-1], given, TAGS, tokens=words["tokens"])
    assert final["sentences"] == expected["sentences"] and final["num_flagged_tokens"] > 0
    assert mean["num_tokens"] == final["num_tokens"] == sum(lengths)


def test_trainer_logits_keep_the_data_set_order_under_group_by_length(tmp_path: Path) -> None:
    """The sequence task's prediction pass (label issues, epoch probabilities) too."""
    from transformers import BertConfig, BertForSequenceClassification, DataCollatorWithPadding

    from jal_trainer import JALConfig, JALTrainer
    from jal_trainer.predictions import model_logits, trainer_logits

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32, num_labels=3))
    tok = tiny_tokenizer()
    encoded = tok([" ".join(w) for w, _ in word_rows(num=12, seed=7)])
    rows = Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                              "labels": [i % 3 for i in range(12)]})
    args = JALConfig(output_dir=str(tmp_path), per_device_eval_batch_size=5, report_to="none", use_cpu=True,
                     disable_tqdm=True, train_sampling_strategy="group_by_length")
    trainer = JALTrainer(model=model, args=args, data_collator=DataCollatorWithPadding(tok))
    assert not np.allclose(trainer.predict(rows).predictions,
                           model_logits(model, rows, collate_fn=trainer.data_collator),
                           atol=1e-5)  # transformers' own predict: permuted
    np.testing.assert_allclose(trainer_logits(trainer, rows),
                               model_logits(model, rows, collate_fn=trainer.data_collator),
                               atol=1e-5)
    assert trainer.args.train_sampling_strategy == "group_by_length"  # put back

@pytest.mark.parametrize("sampling", ["random", "group_by_length"])
def test_the_epoch_pass_leaves_the_training_unchanged(tmp_path: Path, sampling: str) -> None:
    """Same weights with or without the callback: its DataLoader's seed draw must not move dropout or shuffling."""
    from jal_trainer.ner.epoch_words import EpochWordProbabilitiesCallback

    aligned, lengths = aligned_rows(max_length=16)
    plain = train(tmp_path / "plain", [], tiny_dropout_bert(), aligned, sampling).model.state_dict()
    watched = train(tmp_path / "watched", [EpochWordProbabilitiesCallback(aligned, lengths)], tiny_dropout_bert(),
                    aligned, sampling).model.state_dict()
    assert all(torch.equal(plain[k], watched[k]) for k in plain)



def two_process_run(out: Path) -> None:
    """Under torchrun: train with the callback and the reference recorder; each rank saves both means."""
    from jal_trainer.ner.epoch_words import EpochWordProbabilitiesCallback

    aligned, lengths = aligned_rows(max_length=6)
    model = tiny_dropout_bert()
    words, recorder = EpochWordProbabilitiesCallback(aligned, lengths), WordProbabilityRecorder(model, aligned, lengths)
    trainer = train(out, [words, recorder], model, aligned)  # eval batch 5 per process: 12 rows leave padding
    expected = np.concatenate([np.mean([epoch[s] for epoch in recorder.epochs], axis=0) for s in range(len(lengths))])
    np.savez(out / f"rank{trainer.args.process_index}.npz", mean=np.concatenate(words.word_mean()), expected=expected,
             world_size=trainer.args.world_size)


@pytest.mark.slow
def test_two_processes_hold_the_same_epoch_mean(tmp_path: Path) -> None:
    """Each process predicts its share; the gathered mean is the whole training set's, in order, on both ranks."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531", __file__,
           str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in (0, 1)]
    assert int(ranks[0]["world_size"]) == 2
    for rank in ranks:
        cut = np.isnan(rank["expected"]).any(axis=1)
        assert np.array_equal(np.isnan(rank["mean"]).any(axis=1), cut) and cut.any()
        np.testing.assert_allclose(rank["mean"][~cut], rank["expected"][~cut], atol=1e-6)
    np.testing.assert_array_equal(ranks[0]["mean"], ranks[1]["mean"])

def test_lengths_of_other_sentences_are_refused() -> None:
    from jal_trainer.ner.epoch_words import EpochWordProbabilitiesCallback

    aligned, lengths = aligned_rows(max_length=16)
    with pytest.raises(ValueError, match="lengths has 11 sentences but the aligned data set 12"):
        EpochWordProbabilitiesCallback(aligned, lengths[:-1])


@pytest.mark.slow
def test_jal_train_token_issues_use_the_epoch_mean(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForTokenClassification

    from jal_trainer.epoch_state import _load
    from jal_trainer.ner.epoch_words import EPOCH_WORD_PROBABILITIES
    from jal_trainer.train import main

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(1)
    rows = [([WORDS[i] for i in rng.integers(0, 10, 4)], ["B-QUO", "I-QUO", "O", "B-ZIP"]) for _ in range(16)]
    write_conll(data / "train.txt", rows)
    write_conll(data / "test.txt", rows[:4])
    model_dir = tmp_path / "model"
    BertForTokenClassification(BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                          intermediate_size=32)).save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    out = tmp_path / "run"
    main(["--task", "token-classification", "--dataset", "conll", "--data_path", str(data), "--model", str(model_dir),
          "--noise_type", "entity", "--noise_rate", "0.3", "--loss_type", "ce", "--output_dir", str(out),
          "--num_train_epochs", "2", "--per_device_train_batch_size", "8", "--learning_rate", "1e-3",
          "--report_to", "none", "--save_strategy", "no", "--use_cpu", "true", "--disable_tqdm", "true"])
    issues = json.loads((out / "label_issues.json").read_text())
    assert issues["probabilities"] == "epoch mean over 2 epochs, each word's first sub-token"
    assert issues["num_tokens"] == 16 * 4 and "token_auroc" in issues["report"]
    assert _load(out / EPOCH_WORD_PROBABILITIES, 16 * 4)[1] == 2


if __name__ == "__main__":
    import torch.distributed as dist

    two_process_run(Path(sys.argv[1]))
    dist.barrier()  # rank 0 may still write; let both finish before gloo is torn down
    dist.destroy_process_group()
