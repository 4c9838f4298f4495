"""Would a bigger or longer-trained CNN make the cifar10n-worst label-issue ranking pass? One seed per variant.

Issue 15's scorer misses on cifar10n-worst because the confident joint's class noise rates are
wrong there (`label_issue_rank_check.py`). This trains one variant of the benchmark's CNN (the
same data as `bench_label_issues.py`): CE for the full epochs (the "rule on one CE training"
reference) and the scorer's pair (JAL-CE and CE, half the epochs each), then prints the AUPRCs,
the models' accuracy against the clean training labels, and how well the pair's estimated class
noise rates track the true ones. Reads the clean training labels (a diagnosis, not a scorer); no
test split.

Example:
    $ OMP_NUM_THREADS=1 python recipes/label_issue_model_check.py '{"channels": [32, 64, 128], "convs": 2}' 0
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PrinterCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_label_issues import JAL, TimedMemorisation  # noqa: E402
from bench_label_issues_tasks import SETTINGS, load_task  # noqa: E402

from jal_trainer import JALConfig, JALTrainer  # noqa: E402
from jal_trainer.data import DeviceImageDataset, image_stats  # noqa: E402
from jal_trainer.issue_scores import confident_joint, score_label_issues  # noqa: E402
from jal_trainer.label_issues import column_array, issue_report  # noqa: E402
from jal_trainer.models import build_vision_model  # noqa: E402


def epoch_mean(task: Any, variant: dict[str, Any], loss: dict[str, Any], epochs: int, seed: int) -> np.ndarray:
    """(N, K) epoch-mean probabilities of one training of the variant on the noisy rows (unaugmented passes)."""
    cfg = {**SETTINGS[task.name], **variant}
    torch.manual_seed(seed)
    args = JALConfig(output_dir="/tmp/label_issue_model_check", num_train_epochs=epochs,
                     per_device_train_batch_size=cfg["batch"], learning_rate=cfg["lr"], optim="adamw_torch",
                     weight_decay=0.0, lr_scheduler_type="cosine", max_grad_norm=5.0, eval_strategy="no",
                     save_strategy="no", logging_strategy="no", log_level="error", report_to=[], use_cpu=True,
                     seed=seed, disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False, **loss)
    mean, std = image_stats("cifar10")
    train = DeviceImageDataset(task.train, mean=mean, std=std, augment=cfg.get("augment", False))
    callback = TimedMemorisation(DeviceImageDataset(task.train, mean=mean, std=std, augment=False), plot=False,
                                 save_probabilities=False)
    model = build_vision_model("cnn8", label_names=task.train.features["label"].names,
                               stage_channels=tuple(cfg["channels"]), convs_per_stage=cfg.get("convs", 1),
                               hidden_size=cfg["hidden"])
    trainer = JALTrainer(model=model, args=args, train_dataset=train, data_collator=task.collator, callbacks=[callback])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return callback.mean_probabilities


def main(argv: list[str]) -> int:
    variant, seed = json.loads(argv[0]) if argv else {}, int(argv[1]) if len(argv) > 1 else 0
    task = load_task("cifar10n-worst")
    labels, clean = column_array(task.train, "label"), column_array(task.train, "clean_label")
    wrong, epochs = labels != clean, variant.get("epochs", SETTINGS["cifar10n-worst"]["epochs"])
    start = time.process_time()
    ce = epoch_mean(task, variant, {"loss_type": "ce"}, epochs, seed)
    pair = (epoch_mean(task, variant, JAL, epochs // 2, seed) + epoch_mean(task, variant, {"loss_type": "ce"},
                                                                           epochs // 2, seed)) / 2

    def auprc(probs: np.ndarray, ranking: str = "shortfall") -> float:
        scores, flags = score_label_issues(probs, labels, ranking=ranking)
        return round(issue_report(flags, wrong, scores)["auprc"], 3)

    sizes = np.bincount(labels, minlength=ce.shape[1])
    joint = confident_joint(pair, labels)
    estimated = (joint.sum(axis=1) - np.diag(joint)) / sizes
    true = np.bincount(labels[wrong], minlength=len(sizes)) / sizes
    print(json.dumps({"variant": variant, "seed": seed, "cpu_seconds": round(time.process_time() - start, 1),
                      "ce_clean_accuracy": round(float((ce.argmax(1) == clean).mean()), 3),
                      "pair_clean_accuracy": round(float((pair.argmax(1) == clean).mean()), 3),
                      "auprc_ce_rule": auprc(ce), "auprc_pair_shortfall": auprc(pair),
                      "auprc_scorer": auprc(pair, "noise-margin"),
                      "class_rate_correlation": round(float(np.corrcoef(estimated, true)[0, 1]), 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
