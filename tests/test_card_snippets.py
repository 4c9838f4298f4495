"""Every card's usage snippet runs against its own run folder (offline, tiny models built from configs)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict
from transformers import BertConfig, BertModel, BertTokenizerFast

from jal_trainer import JALConfig, JALTrainer, cli
from jal_trainer.arguments import DataArguments, ModelArguments
from jal_trainer.hub import render_card
from jal_trainer.recipes import recipe_path
from jal_trainer.noise import noise_report_from_labels
from jal_trainer.probe import embed_dataset, probe_model
from jal_trainer.run_outputs import write_run

RECIPE = recipe_path("quickstart")
WORDS = ["apple", "river", "engine", "question", "about", "number"]


def snippet(card: Path, run: Path) -> str:
    code = re.search(r"```python\n(.*?)```", card.read_text(), re.S).group(1)
    return code.replace("<user>/" + run.name, str(run))


def tiny_encoder(folder: Path) -> Path:
    """A 1-layer BERT and a WordPiece tokenizer, saved like a Hub checkpoint."""
    folder.mkdir()
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(folder)
    return folder


def test_frozen_encoder_run_is_a_standard_text_classifier_and_its_snippet_runs(tmp_path: Path) -> None:
    encoder = tiny_encoder(tmp_path / "encoder")
    labels = np.repeat(np.arange(3), 8)
    texts = [f"question about {WORDS[c]} number" for c in labels]
    split = Dataset.from_dict({"text": texts, "label": labels.tolist()}).cast_column("label", ClassLabel(num_classes=3))
    data = embed_dataset(DatasetDict(train=split, test=split), str(encoder), max_length=8, cache_dir=tmp_path / "c")
    data = data.rename_column("label", "labels")
    run = tmp_path / "run"
    args = JALConfig(output_dir=str(run), num_train_epochs=3, learning_rate=0.5, per_device_train_batch_size=8,
                     use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True, loss_type="ce")
    trainer = JALTrainer(probe_model(str(encoder), 3, {i: n for i, n in enumerate("abc")}), args,
                         train_dataset=data["train"], eval_dataset=data["test"])
    trainer.train()
    head_logits = trainer.predict(data["test"]).predictions
    write_run(trainer, DataArguments(dataset="trec"), ModelArguments(model=str(encoder), freeze_encoder=True), args,
              {"test_accuracy": 1.0}, noise_report_from_labels(labels, labels))

    config = (run / "config.json").read_text()
    assert "jal-sentence-classifier" in config and str(tmp_path) not in config  # no local path in the config
    assert (run / "tokenizer.json").is_file()
    card = render_card(run)
    namespace: dict = {}
    exec(snippet(card, run), namespace)  # the card's own code: pipeline(...) and one call
    result = namespace["classifier"](texts[:3])
    assert [r["label"] in "abc" for r in result] == [True] * 3
    # from raw text the saved model predicts what the head predicted from the cached embeddings
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(run)
    batch = AutoTokenizer.from_pretrained(run)(texts, padding=True, truncation=True, max_length=8, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits.numpy()
    np.testing.assert_allclose(logits, head_logits, atol=1e-4)


def test_vision_run_card_snippet_runs(tmp_path: Path) -> None:
    run = tmp_path / "digits"
    assert cli.main(["train", "--config", str(RECIPE), "--output_dir", str(run), "--max_steps", "1",
                     "--train_subset", "64", "--test_subset", "20", "--disable_tqdm", "true",
                     "--noise_type", "none"]) == 0
    card = render_card(run)
    namespace = {"images": torch.zeros(2, 1, 8, 8)}
    exec(snippet(card, run), namespace)
    assert namespace["logits"].shape == (2, 10)
