"""`jal train` on your own data end to end, the README's examples as written, and JALTrainer's checks."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import datasets
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

from jal_trainer import JALConfig, JALTrainer
from jal_trainer.paths import shared_dir
from jal_trainer.recipes import recipe_path
from jal_trainer.train import main

sys.path.insert(0, str(Path(__file__).parent))
from test_own_data import reviews, write  # noqa: E402
from test_own_images import write_images  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
MINILM = shared_dir() / "models" / "all-MiniLM-L6-v2"
needs_minilm = pytest.mark.skipif(not MINILM.is_dir(), reason="the MiniLM encoder is not in ../shared")
FAST = ["--max_steps", "2", "--use_cpu", "true", "--report_to", "none", "--save_strategy", "no",
        "--eval_strategy", "no", "--disable_tqdm", "true", "--track_memorisation", "false",
        "--per_device_train_batch_size", "8"]


def readme_commands() -> list[list[str]]:
    """The `jal train` commands of the README's "Your own data" section, as argv lists."""
    section = README.read_text().split("## Your own data", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [shlex.split(block.replace("\\\n", " "))[2:] for block in blocks]  # drop "jal train"


def sst5_stand_in(root: Path) -> Path:
    """A local copy of the Hub set's layout (text, label, label_text; train and test)."""
    names = ["very negative", "negative", "neutral", "positive", "very positive"]
    splits = {split: Dataset.from_dict({"text": [f"{split} text {i}" for i in range(n)],
                                        "label": [i % 5 for i in range(n)],
                                        "label_text": [names[i % 5] for i in range(n)]})
              for split, n in (("train", 40), ("test", 15))}
    datasets.DatasetDict(splits).save_to_disk(root / "sst5")
    return root / "sst5"


@needs_minilm
def test_the_readme_examples_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Local stand-ins: the encoder's Hub id -> ../shared copy, the Hub data set -> a save_to_disk folder."""
    commands = readme_commands()
    assert len(commands) == 3 and commands[0][:2] == ["--data_path", "reviews.csv"]
    monkeypatch.chdir(tmp_path)
    write(reviews(), tmp_path / "reviews.csv")
    write_images(tmp_path / "photos", per_class=6)
    saved = sst5_stand_in(tmp_path)
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda path, *a, **kw: datasets.load_from_disk(str(saved))
                        if path == "SetFit/sst5" else real(path, *a, **kw))
    for argv in commands:
        argv = [str(MINILM) if a == "sentence-transformers/all-MiniLM-L6-v2" else a for a in argv]
        metrics = main([*argv, *FAST])
        run = tmp_path / argv[argv.index("--output_dir") + 1]
        assert json.loads((run / "metrics.json").read_text())["test_accuracy"] == metrics["test_accuracy"]
    assert json.loads((tmp_path / "runs/sst5/config.json").read_text())["id2label"]["0"] == "negative"
    recipe = (tmp_path / "runs/photos/recipe.yaml").read_text()
    assert "dataset: photos" in recipe and "image_mean:\n- 0." in recipe  # computed and recorded


@needs_minilm
def test_string_stars_from_a_csv_train_and_name_the_run(tmp_path: Path) -> None:
    """The issue's first acceptance command, with a few steps."""
    write(reviews(90), tmp_path / "reviews.csv")
    out = tmp_path / "run"
    main(["--data_path", str(tmp_path / "reviews.csv"), "--text_column", "review", "--label_column", "stars",
          "--model", str(MINILM), "--freeze_encoder", "true", "--output_dir", str(out), *FAST])
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "five", "1": "one", "2": "three"}
    assert "dataset: reviews" in (out / "recipe.yaml").read_text()


@needs_minilm
def test_a_missing_column_stops_before_any_model_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModel, AutoModelForSequenceClassification

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the data was checked")

    monkeypatch.setattr(AutoModel, "from_pretrained", refuse)
    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained", refuse)
    write(reviews(), tmp_path / "r.csv")
    with pytest.raises(ValueError, match=r"label_column='rating' is not a column of the train split"):
        main(["--data_path", str(tmp_path / "r.csv"), "--text_column", "review", "--label_column", "rating",
              "--model", str(MINILM), "--output_dir", str(tmp_path / "o"), *FAST])
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())  # nothing written


def test_a_fine_tuned_head_with_other_classes_is_refused(tmp_path: Path) -> None:
    from transformers import BertConfig

    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, num_labels=5, architectures=["BertForSequenceClassification"])
    from jal_trainer.data.checks import check_head

    with pytest.raises(ValueError, match=r"head of 5 classes but the data has 3"):
        check_head(config, ["a", "b", "c"], "my-classifier")
    check_head(config, list("abcde"), "my-classifier")
    config.architectures = ["BertModel"]  # a base encoder gets a new head of any size
    check_head(config, ["a", "b", "c"], "base")


# ---- JALTrainer from Python ----------------------------------------------------------------------


class Linear(torch.nn.Module):
    def __init__(self, num_labels: int = 3) -> None:
        super().__init__()
        self.config = type("Config", (), {"num_labels": num_labels})()
        self.layer = torch.nn.Linear(2, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


def rows(labels, feature=None) -> Dataset:
    data = {"x": [[0.0, 1.0]] * len(labels), "label": labels}
    features = Features({"x": datasets.Sequence(Value("float32")), "label": feature}) if feature else None
    return Dataset.from_dict(data, features=features)


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        (Dataset.from_dict({"x": [[0.0, 1.0]], "stars": [1]}), r"train_dataset has no label column.*\['x', 'stars'\]"),
        (rows(["pos", "neg"]), r"holds string values, not class ids.*class_encode_column\('label'\)"),
        (rows([0.5, 1.0]), r"holds float\d* values, not class ids"),
        (rows([0, 1], ClassLabel(names=list("abcde"))), r"5 classes but the model's head has num_labels=3"),
        (rows([0, 3]), r"labels in \[0, 3\] but the model's head has num_labels=3"),
    ],
)
def test_jal_trainer_gives_the_same_clear_errors(dataset: Dataset, message: str, tmp_path: Path) -> None:
    args = JALConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    with pytest.raises(ValueError, match=message):
        JALTrainer(model=Linear(), args=args, train_dataset=dataset)


def test_jal_trainer_accepts_int_and_ignored_labels(tmp_path: Path) -> None:
    args = JALConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    JALTrainer(model=Linear(), args=args, train_dataset=rows([0, 2, -100]), eval_dataset={"a": rows([1])})


def test_choosing_the_best_checkpoint_holds_out_validation_rows(tmp_path: Path) -> None:
    """load_best_model_at_end evaluates on rows cut from train (digits has no validation split), never on test."""
    recipe = recipe_path("quickstart")
    out = tmp_path / "run"
    main(["--config", str(recipe), "--output_dir", str(out), "--max_steps", "2", "--load_best_model_at_end", "true",
          "--eval_strategy", "steps", "--eval_steps", "1", "--save_strategy", "steps", "--save_steps", "1",
          "--track_memorisation", "false", "--find_label_issues", "false", "--validation_size", "0.1"])
    assert json.loads((out / "noise_report.json").read_text())["num_samples"] == 1297 - 130
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] and any("eval_accuracy" in row for row in state["log_history"])
