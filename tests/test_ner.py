"""Token classification: exact updates on token logits, entity noise, CoNLL data, alignment, metrics, issues.

All data are invented words written into tmp_path; no corpus text is used.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from datasets import ClassLabel, Dataset, Features, Sequence, Value

from jal_trainer.losses import LOSS_NAMES, build_loss
from jal_trainer.ner.noise import entity_noise, token_noise_report
from jal_trainer.ner.tags import entity_spans
from jal_trainer.noisy_datasets import add_label_noise, noise_report
from jal_trainer.recipes import RECIPES_DIR

sys.path.insert(0, str(Path(__file__).parent))
from exactness_runs import max_weight_diff, run_two_processes  # noqa: E402
from token_runs import WORDS, tiny_token_bert, tiny_tokenizer, token_step, write_conll  # noqa: E402


# ---- losses and the trainer on (N, L, K) logits ------------------------------------------------


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_loss_reads_token_logits_and_skips_ignored_tokens(name: str) -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(3, 5, 4), torch.randint(0, 4, (3, 5))
    labels[0, 3:] = -100
    labels[2] = -100  # a row with no label at all
    per_token = build_loss(name, reduction="none")(logits, labels)
    assert per_token.shape == (3, 5)
    assert (per_token[labels == -100] == 0).all()
    flat = build_loss(name, reduction="none")(logits.reshape(-1, 4), labels.reshape(-1))
    assert torch.equal(per_token.reshape(-1), flat)
    mean = build_loss(name)(logits, labels)
    assert mean.item() == pytest.approx(flat.sum().item() / (labels != -100).sum().item(), rel=1e-6)


def test_token_labels_of_the_wrong_shape_are_refused() -> None:
    with pytest.raises(ValueError, match=r"token labels must have shape \(N, L\) = \(2, 3\)"):
        build_loss("ce")(torch.randn(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))


@pytest.fixture(scope="module")
def token_reference() -> dict:
    return token_step(batch_size=8, accumulation=1)


def test_token_accumulation_gives_the_same_update(token_reference: dict) -> None:
    """Batch 8 vs 4 x 2 accumulation steps, with padding per micro-batch and all -100 rows."""
    split = token_step(batch_size=4, accumulation=2)
    assert max_weight_diff(token_reference["weights"], split["weights"]) <= 1e-6
    assert split["loss"] == pytest.approx(token_reference["loss"], rel=1e-6)
    initial = tiny_token_bert().state_dict()
    moved = (torch.tensor(token_reference["weights"]["classifier.weight"]) - initial["classifier.weight"]).abs().max()
    assert moved > 1e-4


@pytest.mark.slow
def test_token_two_processes_give_the_same_update(token_reference: dict, tmp_path: Path) -> None:
    """Batch 2 x 2 accumulation steps x 2 processes (torchrun, gloo) equals batch 8."""
    result = run_two_processes(Path(__file__).parent / "token_runs.py", tmp_path / "rank0.json", port=29523)
    assert result["world_size"] == 2
    assert max_weight_diff(token_reference["weights"], result["weights"]) <= 1e-6
    assert result["loss"] == pytest.approx(token_reference["loss"], rel=1e-6)


# ---- entity noise -----------------------------------------------------------------------------------


def invented_tags(num: int, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num):
        tags, i, length = [], 0, int(rng.integers(3, 12))
        while i < length:
            if rng.random() < 0.3:
                kind, span = ["ZIP", "QUO", "MUX"][rng.integers(3)], int(rng.integers(1, 3))
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (span - 1) + ["O"]
                i += span + 1
            else:
                tags.append("O")
                i += 1
        out.append(tags[:length])
    return out


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.6])
@pytest.mark.parametrize("errors", [None, {"type": 1}, {"missed": 1}, {"boundary": 1, "spurious": 1}])
def test_entity_noise_reaches_the_requested_entity_level_rate(rate: float, errors: dict | None) -> None:
    clean = invented_tags(1500)
    noisy = entity_noise(clean, rate, seed=0, errors=errors)
    assert [len(t) for t in noisy] == [len(t) for t in clean]
    assert token_noise_report(clean, noisy).entity_noise == pytest.approx(rate, abs=0.01)


def test_entity_noise_is_deterministic_for_a_seed() -> None:
    clean = invented_tags(300)
    assert entity_noise(clean, 0.3, seed=5) == entity_noise(clean, 0.3, seed=5)
    assert entity_noise(clean, 0.3, seed=5) != entity_noise(clean, 0.3, seed=6)
    assert entity_noise(clean, 0.0, seed=5) == clean


def test_each_error_kind_does_what_it_says() -> None:
    clean = [["B-ZIP", "I-ZIP", "O", "O", "B-QUO", "O"]] * 40
    for kind, check in [
        ("type", lambda c, n: {(s, e) for s, e, _ in c} == {(s, e) for s, e, _ in n} and c != n),
        ("missed", lambda c, n: n < c),
        ("spurious", lambda c, n: c < n),
        ("boundary", lambda c, n: len(n) == len(c) and {t for *_, t in n} == {t for *_, t in c} and c != n),
    ]:
        noisy = entity_noise(clean, 0.5, seed=1, errors={kind: 1.0})
        changed = [(entity_spans(a), entity_spans(b)) for a, b in zip(clean, noisy) if a != b]
        assert changed and all(check(c, n) for c, n in changed), kind


def tag_dataset(rows: list[list[str]], **extra: list) -> Dataset:
    names = ["O", "B-ZIP", "I-ZIP", "B-QUO", "I-QUO", "B-MUX", "I-MUX"]
    feature = Sequence(ClassLabel(names=names))
    features = {"ner_tags": feature, **{k: Sequence(Value("string")) for k in extra}}
    return Dataset.from_dict({"ner_tags": [[names.index(t) for t in r] for r in rows], **extra},
                             features=Features(features))


def test_add_label_noise_on_a_tag_sequence_column_keeps_the_clean_tags() -> None:
    clean = invented_tags(400)
    ds = tag_dataset(clean)
    noisy = add_label_noise(ds, "entity", 0.3, seed=0, label_column="ner_tags")
    assert noisy.features["clean_label"] == ds.features["ner_tags"]
    assert noisy["clean_label"] == ds["ner_tags"]
    report = noise_report(noisy, label_column="ner_tags")
    assert report.entity_noise == pytest.approx(0.3, abs=0.01)
    assert 0 < report.token_noise < report.entity_noise
    assert sum(noisy["is_noisy"]) == sum(a != b for a, b in zip(noisy["ner_tags"], noisy["clean_label"]))


def test_real_noise_from_a_column_of_tag_strings() -> None:
    clean = [["B-ZIP", "I-ZIP", "O"], ["O", "B-QUO"]]
    crowd = [["B-QUO", "I-QUO", "O"], ["O", "B-QUO"]]
    noisy = add_label_noise(tag_dataset(clean, crowd=crowd), "column", column="crowd", seed=0, label_column="ner_tags")
    report = noise_report(noisy, label_column="ner_tags")
    assert noisy["is_noisy"] == [True, False]
    assert report.token_noise == pytest.approx(2 / 5) and report.entity_noise == pytest.approx(0.5)


def test_tags_outside_the_classlabel_are_named() -> None:
    ds = tag_dataset([["B-ZIP", "O"]], crowd=[["B-PER", "O"]])
    with pytest.raises(ValueError, match=r"tags \['B-PER'\] outside the ClassLabel"):
        add_label_noise(ds, "column", column="crowd", seed=0, label_column="ner_tags")


def test_labels_that_are_not_sequences_are_refused() -> None:
    from jal_trainer.ner.noisy import add_token_label_noise

    ds = Dataset.from_dict({"label": [0, 1]}, features=Features({"label": ClassLabel(names=["O", "B-ZIP"])}))
    with pytest.raises(ValueError, match="must be a sequence of tags per sentence"):
        add_token_label_noise(ds, "entity", 0.2, seed=0, label_column="label")


# ---- CoNLL data, alignment, metrics ----------------------------------------------------------------


def conll_folder(tmp_path: Path, noisy_tag: str = "B-QUO") -> Path:
    rows = [(["zindle", "quaxo", "vesk"], ["B-ZIP", "I-ZIP", "O"]), (["mipple", "glimmer"], ["O", "B-QUO"])]
    noisy = [(rows[0][0], [noisy_tag, "O", "O"]), rows[1]]
    write_conll(tmp_path / "clean.train", rows)
    write_conll(tmp_path / "noise_crowd.train", noisy)
    write_conll(tmp_path / "clean.test", rows[::-1], docstart=False)
    return tmp_path


def test_conll_folder_reads_into_tag_sequences(tmp_path: Path) -> None:
    from jal_trainer.data.conll import load_conll

    dds = load_conll(conll_folder(tmp_path))
    train = dds["train"]
    assert train.features["ner_tags"].feature.names == ["O", "B-QUO", "I-QUO", "B-ZIP", "I-ZIP"]
    assert train.column_names == ["tokens", "ner_tags", "noise_crowd"]
    assert train[0]["tokens"] == ["zindle", "quaxo", "vesk"] and train[0]["noise_crowd"] == [1, 0, 0]
    assert dds["test"].num_rows == 2


def test_token_subsets_follow_subset_seed_not_noise_seed(tmp_path: Path) -> None:
    from jal_trainer.arguments import DataArguments
    from jal_trainer.ner.train import load_token_data

    rng = np.random.default_rng(0)
    rows = [([WORDS[i] for i in rng.integers(0, 10, 3)], ["B-ZIP", "O", "O"]) for _ in range(40)]
    write_conll(tmp_path / "train.txt", rows)
    write_conll(tmp_path / "test.txt", rows)

    def test_rows(**seeds: int) -> list[list[str]]:
        data = DataArguments(data_path=str(tmp_path), train_subset=10, test_subset=10, **seeds)
        return load_token_data(data)["test"]["tokens"]

    assert test_rows(noise_seed=0) == test_rows(noise_seed=1) != test_rows(subset_seed=1)


def test_conll_tag_outside_the_tag_set_is_an_error(tmp_path: Path) -> None:
    from jal_trainer.data.conll import load_conll

    with pytest.raises(ValueError, match=r"noise_crowd.train: sentence 0 has tags \['B-PER'\] outside the tag set"):
        load_conll(conll_folder(tmp_path, noisy_tag="B-PER"))


def test_alignment_labels_first_subtokens_only() -> None:
    from jal_trainer.ner.align import align_labels

    ds = Dataset.from_dict({"tokens": [["glimmer", "zindle", "snoof"]], "ner_tags": [[1, 2, 0]]})
    out = align_labels(ds, tiny_tokenizer())
    tokens = tiny_tokenizer().convert_ids_to_tokens(out[0]["input_ids"])
    assert tokens == ["[CLS]", "glim", "##mer", "zindle", "sno", "##of", "[SEP]"]
    assert out[0]["labels"] == [-100, 1, -100, 2, 0, -100, -100]
    assert out[0]["word_index"] == [-1, 0, -1, 1, 2, -1, -1]


def test_alignment_without_a_fast_tokenizer_is_a_clear_error() -> None:
    from transformers.models.byt5 import ByT5Tokenizer

    from jal_trainer.ner.align import align_labels

    ds = Dataset.from_dict({"tokens": [["zindle"]], "ner_tags": [[0]]})
    with pytest.raises(ValueError, match="needs a fast tokenizer"):
        align_labels(ds, ByT5Tokenizer())


def test_entity_metrics_use_seqeval_spans() -> None:
    from jal_trainer.ner.metrics import compute_metrics_fn

    names = ["O", "B-ZIP", "I-ZIP"]
    labels = np.array([[0, 1, 2, -100], [1, 0, -100, -100]])
    predicted = np.array([[0, 1, 2, 0], [0, 0, 0, 0]])  # first entity right, second missed
    metrics = compute_metrics_fn(names)((np.eye(3)[predicted], labels))
    assert metrics["precision"] == 1.0 and metrics["recall"] == 0.5
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["accuracy"] == pytest.approx(4 / 5)


def test_token_label_issues_against_the_clean_tags() -> None:
    from jal_trainer.ner.issues import find_token_label_issues

    names = ["O", "B-ZIP", "I-ZIP"]
    clean = [["B-ZIP", "I-ZIP", "O"], ["O", "B-ZIP", "O"]] * 20
    given = [list(c) for c in clean]
    given[0] = ["O", "O", "O"]  # a missed entity
    given[3] = ["O", "B-ZIP", "B-ZIP"]  # a spurious entity at word 2
    probs = [np.array([[0.05, 0.9, 0.05] if t == "B-ZIP" else [0.05, 0.05, 0.9] if t == "I-ZIP" else [0.9, 0.05, 0.05]
                       for t in sentence]) for sentence in clean]
    found = find_token_label_issues(probs, given, names, clean=clean, tokens=[[WORDS[0]] * 3] * 40)
    flagged = {(s["index"], t["word"]) for s in found["sentences"] for t in s["tokens"]}
    assert flagged == {(0, 0), (0, 1), (3, 2)}
    report = found["report"]
    assert report["token_auroc"] == 1.0 and report["token_precision"] == 1.0 and report["token_recall"] == 1.0
    assert report["span_precision"] == 1.0 and report["span_recall"] == 1.0 and report["wrong_spans"] == 1


# ---- jal train end to end ---------------------------------------------------------------------------


@pytest.mark.slow
def test_jal_train_token_recipe_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import BertConfig, BertForTokenClassification

    from jal_trainer.train import main

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    rows = [([WORDS[i] for i in rng.integers(0, 10, 5)], ["B-ZIP", "I-ZIP", "O", "B-QUO", "O"]) for _ in range(24)]
    write_conll(data / "train.txt", rows)
    write_conll(data / "test.txt", rows[:8])
    model_dir = tmp_path / "model"
    config = BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32)
    BertForTokenClassification(config).save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    out = tmp_path / "run"
    # no --dataset: a CoNLL folder is recognised from data_path, and the run is named after it
    result = main(["--task", "token-classification", "--data_path", str(data),
                   "--model", str(model_dir), "--noise_type", "entity", "--noise_rate", "0.3", "--loss_type", "jal-ce",
                   "--output_dir", str(out), "--num_train_epochs", "2", "--per_device_train_batch_size", "8",
                   "--learning_rate", "1e-3", "--report_to", "none", "--save_strategy", "no", "--use_cpu", "true",
                   "--disable_tqdm", "true"])
    assert {"test_f1", "test_precision", "test_recall", "test_accuracy"} <= set(result)
    noise = json.loads((out / "noise_report.json").read_text())
    assert noise["entity_noise"] == pytest.approx(0.3, abs=0.05)
    issues = json.loads((out / "label_issues.json").read_text())
    assert issues["num_tokens"] == 24 * 5 and "token_auroc" in issues["report"]
    card = (out / "README.md").read_text()
    assert "type: token-classification" in card and "type: f1" in card and "entity_noise_rate" in card
    summary = capsys.readouterr().out  # the closing table names the entity F1 and the flagged tags
    assert f"clean test entity F1  {result['test_f1']:.4f}" in summary
    assert f"{issues['num_flagged_tokens']} of 120 training tags" in summary and str(out) in summary
    # a pretrained encoder and no loss_preset: the finetune preset, as for sequence classification
    assert ("loss                  jal-ce (alpha 10, beta 1, a 5; finetune preset)" in summary
            and f"entity-level noise {noise['entity_noise']:.1%}" in summary)
    assert yaml.safe_load((out / "recipe.yaml").read_text())["dataset"] == "data"
    check_token_run_commands(out, monkeypatch)


def check_token_run_commands(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`jal card`, `jal push`, `jal report` and `jal clean` on a finished token run: token outputs or a clear
    refusal."""
    from jal_trainer.clean import clean_run
    from jal_trainer.hub import push, render_card
    from jal_trainer.report import main as report

    card = render_card(out).read_text()  # the run's own card is regenerated, as a token card
    assert "type: token-classification" in card and "type: accuracy" not in card
    sent: dict[str, str] = {}
    monkeypatch.setattr(push, "upload_operations", lambda run, text, png: sent.setdefault("card", text) and [])
    push.push_run(out, "someone/ner-run", dry_run=True)
    assert "type: token-classification" in sent["card"] and "name: ner-run" in sent["card"]
    assert report([str(out)]) == 0
    assert "training tags flagged" in (out / "report.md").read_text()
    with pytest.raises(ValueError, match="token-classification"):
        clean_run(out)


@pytest.mark.parametrize("recipe", sorted((RECIPES_DIR / "ner").glob("*.yaml")))
def test_ner_recipes_parse(recipe: Path) -> None:
    from jal_trainer.arguments import parse_recipe

    assert parse_recipe(["--config", f"ner/{recipe.stem}"]) == parse_recipe(["--config", str(recipe)])
    data, model, _ = parse_recipe(["--config", str(recipe)])
    assert model.task == "token-classification" and data.noise_type == "column"
    assert data.noise_column == f"noise_{recipe.stem.split('-')[-1]}" and "${shared}" in data.data_path


def test_auto_is_refused_for_token_labels_before_any_load(tmp_path: Path) -> None:
    from jal_trainer.train import main

    # the model and data paths do not exist: the refusal must come before either is read
    with pytest.raises(ValueError, match="loss_type='auto' is not available for token classification"):
        main(["--task", "token-classification", "--dataset", "conll", "--data_path", str(tmp_path / "none"),
              "--model", str(tmp_path / "no-model"), "--noise_type", "none", "--loss_type", "auto",
              "--output_dir", str(tmp_path / "run"), "--report_to", "none", "--use_cpu", "true"])
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())  # nothing written
