"""The short table `jal train` prints when a run ends: results, label issues, where the files are.

Example:
    >>> print(summary_table("runs/quickstart", {"test_accuracy": 0.91, "train_runtime": 53.2}, None))
    jal train: finished
      clean test accuracy  0.9100
      training time        53.2 s
      run folder           runs/quickstart
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def summary_table(out: str | os.PathLike[str], metrics: Mapping[str, Any],
                  issues: Mapping[str, Any] | None, *, tip: str | None = None,
                  facts: list[tuple[str, str]] = ()) -> str:
    """Rows of (what, value) aligned in two columns, one fact per line; ``tip`` (e.g. `cpu_bf16_tip`) last.

    ``facts``: rows that say how the run trained (`run_facts`: the loss, the training labels' noise).
    """
    rows = [("clean test accuracy", f"{metrics['test_accuracy']:.4f}")]
    if metrics.get("train_runtime") is not None:
        rows.append(("training time", f"{metrics['train_runtime']:.1f} s"))
    rows.extend(facts)
    if issues:
        flagged = f"{issues['num_flagged']} of {issues['num_rows']} training labels ({issues['rule']})"
        rows.append(("label issues", flagged))
        report = issues.get("report")
        if report and not report.get("wrong"):  # clean labels: nothing to find, so no precision either
            n = issues["num_flagged"]
            rows.append(("  vs clean labels", "no training label is wrong" + (f"; the {n} flagged are false alarms"
                                                                             if n else "")))
        elif report:
            rows.append(("  vs clean labels", f"precision {report['precision']:.3f}, recall {report['recall']:.3f}, "
                                              f"F1 {report['f1']:.3f}"))
            if report.get("auroc") is not None:  # the ranking, whatever the count flagged
                rows.append(("  ranking", f"AUROC {report['auroc']:.3f}, AUPRC {report['auprc']:.3f}"))
        rows.append(("  per row", os.path.join(os.fspath(out), "label_issues.csv")))
    return _aligned(out, rows, tip)


def token_summary_table(out: str | os.PathLike[str], metrics: Mapping[str, Any],
                        issues: Mapping[str, Any] | None, *, tip: str | None = None,
                        facts: list[tuple[str, str]] = ()) -> str:
    """The same table for a token (NER) run: entity F1, precision and recall, and the flagged tags.

    Example:
        >>> print(token_summary_table("runs/ner", {"test_f1": 0.57, "test_precision": 0.6, "test_recall": 0.54,
        ...                                         "test_accuracy": 0.91}, None))
        jal train: finished
          clean test entity F1  0.5700 (precision 0.6000, recall 0.5400)
          token accuracy        0.9100
          run folder            runs/ner
    """
    rows = [("clean test entity F1", f"{metrics['test_f1']:.4f} (precision {metrics['test_precision']:.4f}, "
                                     f"recall {metrics['test_recall']:.4f})"),
            ("token accuracy", f"{metrics['test_accuracy']:.4f}")]
    if metrics.get("train_runtime") is not None:
        rows.append(("training time", f"{metrics['train_runtime']:.1f} s"))
    rows.extend(facts)
    if issues:
        rows.append(("label issues", f"{issues['num_flagged_tokens']} of {issues['num_tokens']} training tags, "
                                     f"{issues['num_flagged_spans']} spans"))
        report = issues.get("report") or {}
        if report.get("token_auroc") is not None:  # clean tags known: how well the scores rank the wrong tags
            rows.append(("  vs clean tags", f"token AUROC {report['token_auroc']:.3f}, AUPRC "
                                            f"{report['token_auprc']:.3f}; span precision "
                                            f"{report['span_precision']:.3f}, recall {report['span_recall']:.3f}"))
        rows.append(("  per sentence", os.path.join(os.fspath(out), "label_issues.json")))
    return _aligned(out, rows, tip)


def run_facts(out: str | os.PathLike[str], loss_type: str, preset: str | None, params: Mapping[str, float],
              noise: Any, noise_type: str) -> list[tuple[str, str]]:
    """The ``loss`` row (and, where `loss_type: auto` chose it, from how many candidates) and the noise row.

    ``noise``: the run's `jal_trainer.NoiseReport` (None without clean labels to compare with).

    Example:
        >>> from types import SimpleNamespace
        >>> run_facts("runs/x", "jal-ce", "finetune", {}, SimpleNamespace(noise_rate=0.3, num_samples=480), "pairflip")
        [('loss', 'jal-ce (alpha 10, beta 1, a 5; finetune preset)'), ('training labels', '30.0% of 480 wrong (pairflip)')]
    """
    from jal_trainer.losses import build_loss

    # the values the run trained with: the preset's, overridden by any set explicitly
    hparams = getattr(build_loss(loss_type, preset=preset, **params), "hparams", None) or {}
    values = ", ".join(f"{name} {value:g}" for name, value in hparams.items())
    loss = loss_type + (f" ({values}{f'; {preset} preset' if preset else ''})" if values else "")
    selection = Path(out) / "loss_selection.json"
    if selection.is_file():  # loss_type auto wrote it and handed the chosen loss on in the arguments
        candidates = json.loads(selection.read_text()).get("candidates") or []
        loss += f", chosen by auto from {len(candidates)} candidates ({selection})"
    rows = [("loss", loss)]
    if getattr(noise, "noise_rate", None) is not None and noise_type != "none":
        rows.append(("training labels", f"{noise.noise_rate:.1%} of {noise.num_samples} wrong ({noise_type})"))
    return rows


def _aligned(out: str | os.PathLike[str], rows: list[tuple[str, str]], tip: str | None) -> str:
    """``rows`` plus the run folder and the tip, as two aligned columns under "jal train: finished"."""
    rows = [*rows, ("run folder", os.fspath(out)), *([("tip", tip)] if tip else [])]
    width = max(len(name) for name, _ in rows)
    return "\n".join(["jal train: finished", *(f"  {name:<{width}}  {value}" for name, value in rows)])


def cpu_bf16_tip(device_type: str, *, bf16: bool, fp16: bool, fine_tuned: bool) -> str | None:
    """A one-line tip when a float32 fine-tuning ran on a CPU that computes bf16 natively, else None.

    Measured on a 2-core AMD EPYC with AVX512-BF16 (``recipes/results/cpu_bf16.md``): bf16 autocast
    made an all-MiniLM-L6-v2 training step 1.96x faster (sequence, batch 32 x 32 tokens) and 1.72x
    (tokens, 16 x 48). Only fine-tuning is meant: a head on frozen embeddings is already cheap.

    Example:
        >>> cpu_bf16_tip("cuda", bf16=False, fp16=False, fine_tuned=True) is None
        True
    """
    if device_type != "cpu" or bf16 or fp16 or not fine_tuned or not cpu_has_native_bf16():
        return None
    return "this CPU computes bf16 natively: --bf16 true trains about 2x faster (losses stay float32)"


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX on this CPU (torch's private probes; False where a torch build lacks them)."""
    import torch

    probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(probe is not None and probe() for probe in probes)


__all__ = ["cpu_bf16_tip", "cpu_has_native_bf16", "run_facts", "summary_table", "token_summary_table"]
