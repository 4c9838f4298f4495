"""auto's CE margin: CE is kept only with a lead of ``ce_margin`` bootstrap stds (default 0: CE on a tie)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jal_trainer import JALConfig
from jal_trainer.auto import parse_candidates
from jal_trainer.auto_decide import CE_MARGIN, TIE_ORDER, decide


def slice_with_lead(n: int, ce_wrong: int, rival_wrong: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Noisy labels of ``n`` rows and confident predictions of CE and GCE, wrong on the first rows given."""
    noisy = np.arange(n) % 2

    def predictions(wrong: int) -> np.ndarray:
        pred = noisy.copy()
        pred[:wrong] = 1 - pred[:wrong]
        return np.eye(2)[pred] * 0.8 + 0.1

    return noisy, {"ce": predictions(ce_wrong), "gce": predictions(rival_wrong)}


@pytest.mark.parametrize("margin, expected", [(0.0, "ce"), (2.0, "ce"), (5.0, "gce")])
def test_ce_needs_its_lead_in_bootstrap_stds(margin: float, expected: str) -> None:
    # CE leads by 3 pt noisy (3.8 corrected), about 3.5 std
    noisy, probs = slice_with_lead(400, ce_wrong=40, rival_wrong=52)
    chosen = decide(parse_candidates(["gce"], None), probs, {}, noisy, {"seed": 0}, ce_margin=margin)
    assert chosen.chosen.label == expected, chosen.reason
    assert chosen.settings["ce_margin_stds"] == margin
    assert f"at least {margin:g} std" in chosen.reason


def test_the_default_margin_keeps_ce_on_a_tie() -> None:
    noisy, probs = slice_with_lead(400, ce_wrong=40, rival_wrong=40)
    probs["gce"] = probs["ce"].copy()
    chosen = decide(parse_candidates(["gce"], None), probs, {}, noisy, {"seed": 0})
    assert CE_MARGIN == 0.0 and chosen.chosen.label == "ce", chosen.reason


def test_a_negative_margin_keeps_ce_against_a_small_robust_lead() -> None:
    noisy, probs = slice_with_lead(400, ce_wrong=52, rival_wrong=46)  # GCE leads by 1.5 pt
    candidates = parse_candidates(["gce"], None)
    assert decide(candidates, probs, {}, noisy, {"seed": 0}).chosen.label == "gce"
    assert decide(candidates, probs, {}, noisy, {"seed": 0}, ce_margin=-5.0).chosen.label == "ce"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "1"])
def test_a_bad_margin_fails_when_configured(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="auto_ce_margin"):
        JALConfig(output_dir=str(tmp_path), loss_type="auto", auto_ce_margin=bad, use_cpu=True, report_to=[])


def test_a_tie_between_candidates_is_recorded() -> None:
    noisy, probs = slice_with_lead(400, ce_wrong=52, rival_wrong=40)
    probs["jal-ce"] = probs["gce"].copy()  # the same predictions: the slice cannot separate the two
    for order in (["gce", "jal-ce"], ["jal-ce", "gce"]):  # TIE_ORDER decides, not the order given
        chosen = decide(parse_candidates(order, None), probs, {}, noisy, {"seed": 0})
        assert chosen.chosen.label == "jal-ce" and chosen.settings["tied_with"] == ["gce"]
        assert "gce scored the same" in chosen.reason and "tie order" in chosen.reason
    probs["sce"] = probs["gce"].copy()
    chosen = decide(parse_candidates(["sce", "gce"], None), probs, {}, noisy, {"seed": 0})
    assert TIE_ORDER.index("gce") < TIE_ORDER.index("sce") and chosen.chosen.label == "gce"
    probs["jal-ce"] = probs["ce"].copy()  # no tie with the choice: nothing is recorded
    chosen = decide(parse_candidates(["gce", "jal-ce"], None), probs, {}, noisy, {"seed": 0})
    assert "tied_with" not in chosen.settings and "scored the same" not in chosen.reason


def test_a_tie_with_ce_says_ce_is_kept() -> None:
    noisy, probs = slice_with_lead(400, ce_wrong=40, rival_wrong=40)
    chosen = decide(parse_candidates(["gce"], None), probs, {}, noisy, {"seed": 0})
    assert chosen.chosen.label == "ce" and chosen.settings["tied_with"] == ["gce"]
    assert "CE is kept on a tie" in chosen.reason
