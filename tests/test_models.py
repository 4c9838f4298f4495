"""Vision models: shapes, parameter counts from closed forms, save/load round trips, Auto classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForImageClassification

from jal_trainer.models import (
    CifarResNetConfig,
    CifarResNetForImageClassification,
    CNN8Config,
    CNN8ForImageClassification,
    build_vision_model,
    register_for_hub_code,
)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cnn8_count(channels: int, image_size: int, labels: int) -> int:
    """6 conv(+bias) + 6 BN(2 per channel) + FC(flatten->256) + BN1d + FC(256->labels)."""
    widths = [channels, 64, 64, 128, 128, 196, 196]
    convs = sum(a * b * 9 + b for a, b in zip(widths, widths[1:]))
    bns = sum(2 * b for b in widths[1:])
    flatten = 196 * (image_size // 8) ** 2
    return convs + bns + flatten * 256 + 256 + 2 * 256 + 256 * labels + labels


def resnet_count(depths: tuple[int, ...], labels: int, channels: int = 3) -> int:
    """CIFAR stem (conv 3x3 + BN) + BasicBlocks (two 3x3 convs + BNs, 1x1 conv + BN shortcut on change) + FC."""
    widths = (64, 128, 256, 512)
    total = channels * 64 * 9 + 2 * 64
    c_in = 64
    for stage, (depth, c) in enumerate(zip(depths, widths)):
        for block in range(depth):
            total += c_in * c * 9 + 2 * c + c * c * 9 + 2 * c
            if c_in != c or (stage > 0 and block == 0):
                total += c_in * c + 2 * c
            c_in = c
    return total + 512 * labels + labels


@pytest.mark.parametrize(
    ("name", "channels", "size", "labels", "expected"),
    [
        ("cnn8", 3, 32, 10, cnn8_count(3, 32, 10)),
        ("cnn8", 1, 8, 10, cnn8_count(1, 8, 10)),
        ("resnet18", 3, 32, 10, resnet_count((2, 2, 2, 2), 10)),
        ("resnet34", 3, 32, 100, resnet_count((3, 4, 6, 3), 100)),
    ],
)
def test_forward_shape_and_parameter_count(name: str, channels: int, size: int, labels: int, expected: int) -> None:
    torch.manual_seed(0)
    model = build_vision_model(name, num_labels=labels, num_channels=channels, image_size=size)
    out = model(torch.randn(2, channels, size, size))
    assert out.logits.shape == (2, labels)
    assert out.loss is None
    assert n_params(model) == expected


def test_published_parameter_counts() -> None:
    # The figures quoted for CIFAR ResNets (10 classes) and the 3136-wide CNN layer of the paper.
    assert n_params(build_vision_model("resnet18", num_labels=10)) == 11_173_962
    assert n_params(build_vision_model("resnet34", num_labels=10)) == 21_282_122
    cnn = build_vision_model("cnn8", num_labels=10)
    assert cnn.fc.in_features == 3136


def test_loss_is_cross_entropy_of_the_logits() -> None:
    torch.manual_seed(0)
    model = build_vision_model("cnn8", num_labels=4, num_channels=1, image_size=8).eval()
    x, y = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 3, 0])
    out = model(x, labels=y, clean_label=y)  # extra batch columns are ignored
    log_probs = out.logits.log_softmax(-1)
    assert torch.allclose(out.loss, -log_probs[torch.arange(5), y].mean())


def test_convolutions_get_kaiming_fan_out_init() -> None:
    torch.manual_seed(0)
    model = build_vision_model("resnet18", num_labels=10)
    conv = model.stages[3][0].conv2  # 512 -> 512, fan_out = 512 * 9
    expected_std = (2.0 / (512 * 9)) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.02)
    bn = model.stages[3][0].bn2
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))


@pytest.mark.parametrize("name", ["cnn8", "resnet18"])
def test_save_and_reload_give_identical_outputs(tmp_path: Path, name: str) -> None:
    torch.manual_seed(0)
    model = build_vision_model(name, label_names=[f"c{i}" for i in range(5)])
    model(torch.randn(2, 3, 32, 32))  # one training-mode pass moves the BN running statistics off 0 / 1
    model.eval().save_pretrained(tmp_path)
    x = torch.randn(1, 3, 32, 32)
    direct = type(model).from_pretrained(tmp_path).eval()
    auto = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert type(auto) is type(model)
    reference = model.state_dict()
    for loaded in (direct, auto):
        state = loaded.state_dict()
        assert state.keys() == reference.keys()
        assert all(torch.equal(state[k], reference[k]) for k in reference)  # buffers (BN statistics) too
        # CPU kernels may pick another summation order between calls: equal up to float rounding
        torch.testing.assert_close(loaded(x).logits, model(x).logits, rtol=1e-5, atol=1e-6)
    assert auto.config.id2label == {i: f"c{i}" for i in range(5)}
    assert auto.config.label2id["c3"] == 3


def test_auto_config_knows_the_model_types(tmp_path: Path) -> None:
    config = AutoConfig.for_model("jal-cnn8", num_channels=1, image_size=8, num_labels=3)
    assert isinstance(config, CNN8Config) and config.flatten_size == 196
    CifarResNetConfig.resnet34(num_labels=7).save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, CifarResNetConfig)
    assert loaded.depths == [3, 4, 6, 3] and loaded.num_labels == 7
    assert isinstance(AutoModelForImageClassification.from_config(loaded), CifarResNetForImageClassification)


def test_bad_configs_and_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="too small"):
        CNN8Config(image_size=4)
    with pytest.raises(ValueError, match="equal length"):
        CifarResNetConfig(depths=(2, 2), hidden_sizes=(64, 128, 256))
    with pytest.raises(ValueError, match="unknown vision model"):
        build_vision_model("vgg16", num_labels=10)
    with pytest.raises(ValueError, match="num_labels"):
        build_vision_model("cnn8")
    model = CNN8ForImageClassification(CNN8Config(num_labels=2, image_size=32))
    with pytest.raises(ValueError, match="image_size"):
        model(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="pixel_values must be"):
        model(torch.randn(1, 1, 32, 32))


def test_hub_code_is_saved_beside_the_weights(tmp_path: Path) -> None:
    """After register_for_hub_code, a saved folder carries self-contained code and an auto_map."""
    try:
        register_for_hub_code()
        build_vision_model("resnet18", num_labels=3).save_pretrained(tmp_path)
    finally:  # class-level state: do not leak into the other tests
        for cls in (CNN8Config, CNN8ForImageClassification, CifarResNetConfig, CifarResNetForImageClassification):
            cls._auto_class = None
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"] == {
        "AutoConfig": "resnet.CifarResNetConfig",
        "AutoModelForImageClassification": "resnet.CifarResNetForImageClassification",
    }
    for code in ("resnet.py", "_classifier.py", "_initialization.py"):
        imports = [line for line in (tmp_path / code).read_text().splitlines() if line.startswith(("import", "from"))]
        # Only torch, transformers and relative siblings: loadable with trust_remote_code alone.
        assert imports and all(
            line.split()[1].split(".")[0] in ("__future__", "typing", "torch", "transformers", "")
            for line in imports
        ), imports
