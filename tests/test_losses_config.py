"""Loss presets, parameters and their errors, and what the loss modules import."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jal_trainer.losses import LOSS_NAMES, PRESETS, build_loss

sys.path.insert(0, str(Path(__file__).parent))
from loss_closed_forms import make_batch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------- presets and parameters


def test_registry_names_exactly() -> None:
    assert LOSS_NAMES == (
        "ce", "focal", "mae", "rce", "gce", "sce", "nce", "nfl", "agce", "aul", "ael", "nnce",
        "amse", "nce+mae", "nce+rce", "nfl+rce", "nce+agce", "nce+aul", "nce+ael", "anl-ce",
        "anl-fl", "jal-ce", "jal-fl",
    )  # fmt: skip
    assert set(PRESETS) == {"cifar10", "cifar100", "webvision", "clothing1m", "finetune"}


# JAL (alpha, beta, a) from reference section 4.
@pytest.mark.parametrize(
    ("preset", "expected"),
    [("cifar10", (1, 1, 30)), ("cifar100", (5, 1, 20)), ("webvision", (50, 1, 30)), ("clothing1m", (5, 0.1, 5))],
)
@pytest.mark.parametrize("name", ["jal-ce", "jal-fl"])
def test_jal_presets(name: str, preset: str, expected: tuple[float, float, float]) -> None:
    hp = build_loss(name, preset=preset).hparams
    assert (hp["alpha"], hp["beta"], hp["a"]) == expected
    if name == "jal-fl":
        assert hp["gamma"] == 0.5


# Baselines from reference section 5 (CIFAR-10 / CIFAR-100).
@pytest.mark.parametrize(
    ("name", "cifar10", "cifar100"),
    [
        ("gce", {"q": 0.7}, {"q": 0.7}),
        ("sce", {"alpha": 0.1, "beta": 1}, {"alpha": 6, "beta": 0.1}),
        ("nce+rce", {"alpha": 1, "beta": 1}, {"alpha": 10, "beta": 0.1}),
        ("nfl+rce", {"alpha": 1, "beta": 1}, {"alpha": 10, "beta": 0.1}),
        ("nce+mae", {"alpha": 1, "beta": 1}, {"alpha": 10, "beta": 0.1}),
        ("nce+agce", {"alpha": 1, "beta": 4, "a": 6, "q": 1.5}, {"alpha": 10, "beta": 0.1, "a": 1.8, "q": 3}),
        ("nce+aul", {"alpha": 1, "beta": 4, "a": 6.3, "q": 1.5}, {"alpha": 10, "beta": 0.015, "a": 6, "q": 3}),
        ("nce+ael", {"alpha": 1, "beta": 4, "a": 5}, {"alpha": 10, "beta": 0.1, "a": 1.5}),
        ("anl-ce", {"alpha": 5, "beta": 5}, {"alpha": 10, "beta": 1}),
        ("anl-fl", {"alpha": 5, "beta": 5}, {"alpha": 10, "beta": 1}),
    ],
)
def test_baseline_presets(name: str, cifar10: dict[str, float], cifar100: dict[str, float]) -> None:
    for preset, expected in (("cifar10", cifar10), ("cifar100", cifar100)):
        hp = build_loss(name, preset=preset).hparams
        assert {key: hp[key] for key in expected} == expected


def test_explicit_params_override_preset_and_spec_records_them() -> None:
    loss = build_loss("jal-ce", preset="cifar100", a=10, reduction="sum")
    assert loss.hparams == {"alpha": 5.0, "beta": 1.0, "a": 10.0}
    assert loss.spec == {
        "name": "jal-ce", "preset": "cifar100", "reduction": "sum", "ignore_index": -100,
        "params": {"alpha": 5.0, "beta": 1.0, "a": 10.0},
    }  # fmt: skip
    rebuilt = build_loss(loss.spec["name"], reduction=loss.spec["reduction"], **loss.spec["params"])
    z, y = make_batch(5, 10, seed=17)
    torch.testing.assert_close(rebuilt(z, y), loss(z, y))
    assert "a=10" in repr(loss)


def test_parameterless_losses_accept_every_preset() -> None:
    for preset in PRESETS:
        for name in ("ce", "rce", "nce", "nnce"):
            assert build_loss(name, preset=preset).hparams == {}


def test_defaults() -> None:
    assert build_loss("focal").hparams == {"gamma": 0.5}
    assert build_loss("nfl").hparams == {"gamma": 0.5}
    assert build_loss("gce").hparams == {"q": 0.7}
    assert build_loss("mae").hparams == {"scale": 2.0}
    assert build_loss("amse").hparams == {"a": 30.0}
    assert build_loss("jal-ce").hparams == {"alpha": 1.0, "beta": 1.0, "a": 30.0}


# --------------------------------------------------------------------- errors


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown loss name 'jal_ce'.*jal-ce.*Did you mean 'jal-ce'"):
        build_loss("jal_ce")


def test_unknown_preset_lists_presets() -> None:
    with pytest.raises(ValueError, match=r"unknown preset 'cifar-10'.*cifar10, cifar100, webvision, clothing1m"):
        build_loss("jal-ce", preset="cifar-10")


def test_preset_without_values_says_which_presets_define_the_loss() -> None:
    with pytest.raises(ValueError, match=r"'webvision' has no values for loss 'nce\+rce'.*cifar10, cifar100"):
        build_loss("nce+rce", preset="webvision")
    with pytest.raises(ValueError, match=r"no preset defines it.*\(gamma\)"):
        build_loss("focal", preset="cifar10")


@pytest.mark.parametrize(
    ("name", "params", "pattern"),
    [
        ("ce", {"q": 0.5}, r"ce has no parameter 'q': it takes no parameters"),
        ("jal-ce", {"gamma": 0.5}, r"its parameters are alpha, beta, a"),
        ("gce", {"a": 2.0, "q": 0.5}, r"gce has no parameter 'a': its parameters are q"),
    ],
)
def test_unknown_parameter_lists_the_loss_parameters(name: str, params: dict[str, float], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        build_loss(name, **params)


@pytest.mark.parametrize(
    ("name", "params", "pattern"),
    [
        ("amse", {"a": 1.0}, r"a > 1"),
        ("jal-ce", {"a": 0.5}, r"a > 1"),
        ("jal-fl", {"a": 1.0}, r"a > 1"),
        ("gce", {"q": 0.0}, r"q > 0"),
        ("agce", {"q": -1.0}, r"q > 0"),
        ("nce+aul", {"q": 0.0}, r"q > 0"),
        ("jal-ce", {"alpha": -1.0}, r"alpha >= 0"),
        ("sce", {"beta": -0.1}, r"beta >= 0"),
        ("mae", {"scale": -2.0}, r"scale >= 0"),
        ("focal", {"gamma": -0.5}, r"gamma >= 0"),
        ("nfl+rce", {"gamma": -1.0}, r"gamma >= 0"),
        ("agce", {"a": 0.0}, r"a > 0"),
        ("nce+agce", {"a": -1.0}, r"a > 0"),
        ("aul", {"a": 1.0}, r"a > 1"),
        ("nce+aul", {"a": 0.5}, r"a > 1"),
        ("ael", {"a": 0.0}, r"a > 0"),
        ("nce+ael", {"a": -2.0}, r"a > 0"),
        ("jal-ce", {"a": float("nan")}, r"a > 1"),
        ("jal-ce", {"beta": float("inf")}, r"beta >= 0"),
    ],
)
def test_out_of_range_parameters(name: str, params: dict[str, float], pattern: str) -> None:
    with pytest.raises(ValueError, match=f"{re.escape(name)}: parameter .*out of range.*{pattern}"):
        build_loss(name, **params)


@pytest.mark.parametrize("value", [True, "30", None])
def test_non_numeric_parameter(value: object) -> None:
    with pytest.raises(ValueError, match=r"must be a real number"):
        build_loss("jal-ce", a=value)


def test_bad_reduction_and_ignore_index() -> None:
    with pytest.raises(ValueError, match=r"reduction must be one of mean, sum, none"):
        build_loss("ce", reduction="avg")
    with pytest.raises(ValueError, match=r"ignore_index must be an int"):
        build_loss("ce", ignore_index=-100.0)


@pytest.mark.parametrize("name", ["ce", "jal-ce", "nce+rce"])
def test_labels_out_of_range(name: str) -> None:
    z = torch.randn(4, 5)
    loss = build_loss(name)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\).*from 0 to 5"):
        loss(z, torch.tensor([0, 1, 5, 2]))
    with pytest.raises(ValueError, match=r"from -1 to 2"):
        loss(z, torch.tensor([0, -1, -100, 2]))
    if loss.is_combination:
        with pytest.raises(ValueError, match=r"labels must lie"):
            loss.parts(z, torch.tensor([0, 1, 7, 2]))


@pytest.mark.parametrize(
    ("logits", "labels", "pattern"),
    [
        (torch.randn(5), torch.zeros(5, dtype=torch.long), r"shape \(N, K\)"),
        (torch.randn(2, 3, 4), torch.zeros(2, dtype=torch.long), r"shape \(N, K\)"),
        (torch.randn(4, 1), torch.zeros(4, dtype=torch.long), r"at least 2 classes"),
        (torch.randint(0, 3, (4, 3)), torch.zeros(4, dtype=torch.long), r"floating point"),
        (torch.randn(4, 3), torch.zeros(3, dtype=torch.long), r"labels must have shape \(N,\) = \(4,\)"),
        (torch.randn(4, 3), torch.zeros(4), r"integer class indices"),
    ],
)
def test_bad_inputs(logits: torch.Tensor, labels: torch.Tensor, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        build_loss("jal-ce")(logits, labels)


# --------------------------------------------------------------------- import hygiene and benchmark


def test_losses_import_neither_transformers_nor_datasets() -> None:
    code = "import sys, jal_trainer.losses; print(sorted(m for m in ('transformers', 'datasets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_benchmark_reference_composition_is_jal_ce() -> None:
    spec = importlib.util.spec_from_file_location("bench_losses", ROOT / "recipes" / "bench_losses.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    z, y = make_batch(32, 10, seed=18, dtype=torch.float32)
    want = build_loss("jal-ce", alpha=2.0, beta=0.5, a=12.0)(z, y)
    torch.testing.assert_close(bench.reference_jal_ce(z, y, 2.0, 0.5, 12.0), want)
