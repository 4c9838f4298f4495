"""How ``loss_type: auto`` chooses among its scored candidates, and what it records (`LossSelection`).

Every candidate gets a score on the held-out slice: its estimated clean accuracy (see
:mod:`jal_trainer.selection`). The highest score wins; CE keeps a tie with CE, and a tie between
other candidates goes by `TIE_ORDER` (JAL-CE, NCE+RCE, GCE, SCE). ``ce_margin``
(``auto_ce_margin``) asks more of CE, the candidate auto always has: when CE scores highest, it is
kept only if it leads the best other candidate by at least ``ce_margin`` bootstrap stds of the gap
between the two on the slice (`bootstrap_gap_std`); otherwise that candidate is chosen. A negative
margin asks the reverse: a robust loss must beat CE by ``-ce_margin`` stds.

Why one might: noisy-slice accuracy rewards predicting the noisy label, and a model that fits noise
the slice shares (the keyword rules of weak supervision) earns part of its score from that; CE fits
noise the most. Why the default is 0 (:data:`CE_MARGIN`): judged on held-out slices' clean training
labels, no margin separated the cases. In the probe regime (21 slices,
``recipes/results/auto_slice_check.md``) 0 had the lowest regret. Fine-tuning the whole encoder
(``recipes/results/auto_slice_check_finetune.md``), CE's lead was 0.96 std on a WRENCH sms slice
where CE was 17.5 pt worse than the robust losses by clean labels, and 0.84 std on a WRENCH trec
slice where it was 5.9 pt better: a margin that fixes sms costs trec. On a second sms slice GCE
scored highest while it was 17 pt below NCE+RCE by clean labels: fitting systematic noise
misranks the robust losses among themselves too.

Example:
    >>> import numpy as np
    >>> from jal_trainer.auto import parse_candidates
    >>> noisy = np.array([0, 1] * 50)
    >>> exact = np.eye(2)[noisy]                        # agrees with every noisy label
    >>> close = exact.copy(); close[:2] = close[:2, ::-1]   # 2 rows of 100 differ
    >>> cands = parse_candidates(["gce"], None)
    >>> decide(cands, {"ce": exact, "gce": close}, {}, noisy, {"seed": 0}).chosen.label
    'ce'
    >>> decide(cands, {"ce": exact, "gce": close}, {}, noisy, {"seed": 0}, ce_margin=3.0).chosen.label
    'gce'
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from jal_trainer.atomic import atomic_target
from jal_trainer.auto_search import replace_args
from jal_trainer.config import JALConfig
from jal_trainer.selection import bootstrap_gap_std, confident_transition, informative_rows, repair_transition
from jal_trainer.selection import slice_scores

if TYPE_CHECKING:
    from jal_trainer.auto import Candidate

SELECTION_FILE = "loss_selection.json"
#: CE's required lead over the best other candidate, in bootstrap stds, when ``auto_ce_margin`` is
#: not set (module docstring). In the probe regime, 0 against -0.5 and -1 (a robust loss must beat
#: CE by that many stds): worst regret 1.9, 4.4 and 5.0 pt, mean 0.1, 0.7 and 1.0 pt.
CE_MARGIN = 0.0
#: Which candidate wins when several score exactly the same (CE still keeps a tie with CE). Ordered
#: by mean regret on 45 held-out slices' clean labels (noisy training rows, never a test split;
#: ``recipes/results/auto_tie_order.md``): JAL-CE 1.14 pt, NCE+RCE 1.69, GCE 3.13, SCE 5.54.
#: Losses not listed come after, in candidate order. CE keeps a tie with CE: on the same slices its
#: regret against the best of all candidates is 1.52 pt on average, JAL-CE's 3.81.
TIE_ORDER = ("jal-ce", "nce+rce", "gce", "sce")


@dataclasses.dataclass
class LossSelection:
    """What ``auto`` tried and chose. ``candidates``: one dict per candidate with ``label``,
    ``status`` (ok / failed), ``noisy_slice_accuracy``, ``estimated_clean_accuracy``, ``error``
    (and ``flagged_rows`` for a ``+clean`` one). ``dropped``: when a ``+clean`` candidate was
    chosen, the sorted indices of the training rows its trial flagged (`training_rows` leaves them
    out), or the coin-flip rows auto left out (`jal_trainer.auto_coinflips`), else None. Whether a
    dropped label was truly wrong is unknowable without clean labels: only the counts are recorded."""

    chosen: Candidate
    reason: str
    candidates: list[dict[str, Any]]
    transition: list[list[float]] | None
    corrected: bool
    settings: dict[str, Any]
    dropped: np.ndarray | None = None

    def apply(self, args: JALConfig) -> JALConfig:
        """A copy of ``args`` that trains the chosen loss (for the final training, on `training_rows`)."""
        return replace_args(args, **self.chosen.settings())

    def training_rows(self, train_dataset: Any) -> Any:
        """The final training set: ``train_dataset`` (the set `select_loss` chose on, same rows and order)
        without the ``dropped`` rows when a ``+clean`` candidate was chosen, else ``train_dataset`` itself.

        Example:
            >>> final = selection.training_rows(noisy_train)  # doctest: +SKIP
            >>> JALTrainer(model, selection.apply(args), train_dataset=final).train()  # doctest: +SKIP
        """
        if self.dropped is None:
            return train_dataset
        rows = sum(int(self.settings.get(k, 0)) for k in ("holdout_rows", "trained_rows", "coin_flip_rows"))
        if len(train_dataset) != rows:
            raise ValueError(f"auto chose {self.chosen.label} on {rows} rows, but this training set has "
                             f"{len(train_dataset)}: pass the very set select_loss chose on.")
        return train_dataset.select(np.setdiff1d(np.arange(rows), self.dropped))

    def to_dict(self) -> dict[str, Any]:
        dropped = {} if self.dropped is None else {"dropped_rows": int(len(self.dropped)),
                                                   "dropped_row_indices": self.dropped.tolist()}
        return {"chosen": self.chosen.label, "loss_type": self.chosen.loss_type, "loss_preset": self.chosen.preset,
                "detect_then_retrain": self.chosen.clean, **dropped, "reason": self.reason,
                "candidates": self.candidates, "corrected": self.corrected, "estimated_transition": self.transition,
                **self.settings}

    def write(self, output_dir: str | os.PathLike[str]) -> Path:
        """Write ``loss_selection.json`` into ``output_dir`` (atomically) and return its path."""
        path = Path(output_dir) / SELECTION_FILE
        with atomic_target(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2))
        return path


def decide(candidates: list[Candidate], probs: dict[str, np.ndarray], failures: dict[str, str], noisy: np.ndarray,
           settings: dict[str, Any], *, weak_labels: np.ndarray | None = None,
           ce_margin: float = CE_MARGIN) -> LossSelection:
    """Score the candidates from their slice probabilities ``probs`` (label -> ``(N, K)``) and choose.

    ``noisy`` ``(N,)``: the slice's noisy labels; ``weak_labels`` ``(N, L)`` (optional): its weak
    votes, which mark the rows whose label is a coin flip (`informative_rows`). ``ce_margin``: the
    lead, in bootstrap stds of the gap, CE needs over the best other candidate (module docstring).
    """
    ok = [c for c in candidates if c.label in probs and c.label not in failures]
    transition, replaced, informative, consensus = None, [], None, None
    if ok:
        mean = np.mean([probs[c.label] for c in ok], axis=0)  # (N, K): the candidates' consensus
        consensus = mean.argmax(axis=1)
        informative = informative_rows(weak_labels, mean.shape[1], len(noisy))
        if informative.sum() >= mean.shape[1]:
            transition, replaced = repair_transition(confident_transition(mean[informative], noisy[informative]))
    corrected = transition is not None
    settings = {**settings, "transition_rows_replaced": replaced, "ce_margin_stds": ce_margin,
                "informative_rows": None if informative is None else int(informative.sum())}
    rows = []
    for c in candidates:
        if c not in ok:
            rows.append({"label": c.label, "status": "failed", "error": failures.get(c.label, "no predictions")})
            continue
        scores = slice_scores(probs[c.label].argmax(1), noisy, transition, informative, consensus)
        rows.append({"label": c.label, "status": "ok", **{k: round(v, 4) for k, v in scores.items()}})
    if not ok:
        return LossSelection(candidates[0], "every candidate failed", rows, None, False, settings)
    score = {r["label"]: r["ranking_score"] for r in rows if r["status"] == "ok"}
    how = "estimated clean accuracy (noisy-slice accuracy corrected by the estimated transition matrix)" if corrected \
        else "noisy-slice accuracy (no row of the estimated transition matrix is clean-label dominant: no correction)"
    if informative is not None and not informative.all():
        how += f"; {int((~informative).sum())} slice rows with a tied or empty majority vote scored by consensus"
    ce = next((c for c in ok if c.plain_ce), None)
    others = [c for c in ok if c is not ce]
    if ce is None or not others:
        best = max(ok, key=lambda c: (score[c.label], -_tie_rank(c)))
        reason = f"highest {how}: {score[best.label]:.4f}" + _tie_note(best, ok, score, settings)
        return LossSelection(best, reason, rows, _rounded(transition), corrected, settings)
    rival = max(others, key=lambda c: (score[c.label], -_tie_rank(c)))
    lead = score[ce.label] - score[rival.label]
    spread = bootstrap_gap_std(probs[ce.label].argmax(1), probs[rival.label].argmax(1), noisy, transition,
                               informative=informative, consensus=consensus, seed=int(settings["seed"]))
    settings.update(ce_lead=round(lead, 4), ce_lead_std=round(spread, 4), ce_rival=rival.label)
    gap = f"{lead:+.4f} (bootstrap std of the gap {spread:.4f}; CE is kept with a lead of at least {ce_margin:g} std)"
    if lead >= ce_margin * spread:
        best, reason = ce, (f"CE kept: by {how}, CE {score[ce.label]:.4f} against "
                            f"{rival.label}'s {score[rival.label]:.4f}")
    else:
        best, reason = rival, (f"{rival.label} chosen: by {how}, {score[rival.label]:.4f} against "
                               f"CE's {score[ce.label]:.4f}")
    reason += f", CE's lead {gap}" + _tie_note(best, ok, score, settings)
    return LossSelection(best, reason, rows, _rounded(transition), corrected, settings)


def _tie_rank(candidate: Candidate) -> int:
    """Place of a candidate's loss in `TIE_ORDER` (``len(TIE_ORDER)`` when not listed): lower wins a tie."""
    return TIE_ORDER.index(candidate.loss_type) if candidate.loss_type in TIE_ORDER else len(TIE_ORDER)


def _tie_note(best: Candidate, ok: list[Candidate], score: dict[str, float], settings: dict[str, Any]) -> str:
    """Say so (in the reason and ``settings["tied_with"]``) when other candidates scored exactly as the choice.

    Why: on a small slice several losses often make the same predictions, and then the slice
    cannot tell them apart: `TIE_ORDER` decides, and a user should know that the choice among
    them is not evidence that one is better on this data.
    """
    tied = [c.label for c in ok if c is not best and score[c.label] == score[best.label]]
    if not tied:
        return ""
    settings["tied_with"] = tied
    rule = "CE is kept on a tie" if best.plain_ce else f"the tie order ({', '.join(TIE_ORDER)}) decided"
    return (f"; {', '.join(tied)} scored the same ({score[best.label]:.4f}): the slice cannot tell them apart, "
            f"and {rule}")


def _rounded(transition: np.ndarray | None) -> list[list[float]] | None:
    return np.round(transition, 4).tolist() if transition is not None else None


__all__ = ["CE_MARGIN", "LossSelection", "SELECTION_FILE", "TIE_ORDER", "decide"]
