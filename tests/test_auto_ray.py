"""loss_type auto with auto_backend ray: the same choice, scores and slice predictions as Optuna;
failures come back from Ray's workers; a clear error without ray or without shared storage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import jal_trainer.auto as auto
from jal_trainer.auto import SELECTION_FILE, _CandidateTrainer, select_loss

pytest.importorskip("optuna")
from test_auto import MLP, auto_args, blobs  # noqa: E402  (the tiny problem of test_auto.py)


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray on two CPUs for this module's searches (a search joins it rather than starting its own)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.tune")
    from ray import cloudpickle

    # The workers cannot import the test modules: send their model classes by value.
    modules = [sys.modules[MLP.__module__], sys.modules[__name__]]
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield ray
    ray.shutdown()
    for module in modules:
        cloudpickle.unregister_pickle_by_value(module)


def spied_select(monkeypatch: pytest.MonkeyPatch, *args, **kwargs) -> tuple[auto.LossSelection, dict]:
    """`select_loss`, also returning the slice probabilities it scored (label -> (N, K))."""
    seen: dict[str, np.ndarray] = {}
    original = auto.decide

    def spy(candidates, probs, *rest, **kw):
        seen.update(probs)
        return original(candidates, probs, *rest, **kw)

    monkeypatch.setattr(auto, "decide", spy)
    selection = select_loss(*args, **kwargs)
    monkeypatch.setattr(auto, "decide", original)
    return selection, seen


def gce_cannot_start(trial) -> MLP:
    """model_init that fails for the gce candidate: transformers passes it the trial (Ray: a dict)."""
    if trial is not None and (trial["loss_type"] if isinstance(trial, dict) else trial.params["loss_type"]) == "gce":
        raise RuntimeError("gce cannot start (simulated)")
    return MLP()


def test_a_model_that_fails_to_build_is_recorded_for_its_own_candidate(tmp_path: Path) -> None:
    """The model is built before the trial sets the loss: the failure must not go to the previous candidate."""
    args = auto_args(tmp_path, auto_candidates=["gce", "nce+rce"], num_train_epochs=1)
    select_loss(gce_cannot_start, args, blobs(100, 1))
    rows = {row["label"]: row for row in json.loads((tmp_path / SELECTION_FILE).read_text())["candidates"]}
    assert rows["gce"] == {"label": "gce", "status": "failed", "error": "RuntimeError: gce cannot start (simulated)"}
    assert rows["ce"]["status"] == rows["nce+rce"]["status"] == "ok"


@pytest.mark.slow
def test_ray_chooses_as_optuna_does(tmp_path: Path, ray_session, monkeypatch: pytest.MonkeyPatch) -> None:
    data = blobs(200, 1, noise=0.3)
    settings = dict(auto_candidates=["gce", "nce+rce"], num_train_epochs=2)
    chosen, probs = {}, {}
    for backend in ("optuna", "ray"):
        out = tmp_path / backend
        (out / "keep.txt").parent.mkdir()
        (out / "keep.txt").write_text("user data")
        storage = tmp_path / f"shared-{backend}"  # as a folder every machine of a cluster would see
        monkeypatch.chdir(tmp_path)  # a relative auto_storage: Ray's workers run in folders of their own
        args = auto_args(out, auto_backend=backend, auto_storage=storage.name, **settings)
        chosen[backend], probs[backend] = spied_select(monkeypatch, gce_cannot_start, args, data)
        # the run folder gets only the record; the scratch (and Ray's results) is gone from the storage
        assert sorted(p.name for p in out.iterdir()) == ["keep.txt", SELECTION_FILE]
        assert list(storage.iterdir()) == []
    assert sorted(probs["ray"]) == sorted(probs["optuna"]) == ["ce", "nce+rce"]  # gce failed in both
    for label, optuna_probs in probs["optuna"].items():
        assert probs["ray"][label].shape == optuna_probs.shape == (40, 4)
        np.testing.assert_allclose(probs["ray"][label], optuna_probs, atol=1e-4)
    records = {b: json.loads((tmp_path / b / SELECTION_FILE).read_text()) for b in ("optuna", "ray")}
    assert records["ray"].pop("backend") == "ray" and records["optuna"].pop("backend") == "optuna"
    assert records["ray"] == records["optuna"]
    assert chosen["ray"].chosen == chosen["optuna"].chosen and chosen["ray"].reason == chosen["optuna"].reason
    assert [row["status"] for row in records["ray"]["candidates"]] == ["ok", "failed", "ok"]
    assert records["ray"]["candidates"][1]["error"] == "RuntimeError: gce cannot start (simulated)"


class _Broken(MLP):
    def forward(self, x):
        raise RuntimeError("broken model (simulated)")


@pytest.mark.slow
def test_failures_in_ray_workers_are_recorded(tmp_path: Path, ray_session) -> None:
    (tmp_path / "keep.txt").write_text("user data")
    args = auto_args(tmp_path, auto_backend="ray", auto_candidates=["gce"], num_train_epochs=1)
    with pytest.raises(RuntimeError, match="every candidate failed"):
        select_loss(_Broken, args, blobs(100, 1))
    rows = json.loads((tmp_path / SELECTION_FILE).read_text())["candidates"]
    assert [(row["label"], row["status"]) for row in rows] == [("ce", "failed"), ("gce", "failed")]
    assert all("broken model (simulated)" in row["error"] for row in rows)  # the worker's own error text
    assert (tmp_path / "keep.txt").read_text() == "user data"


def test_several_machines_without_shared_storage_fail_before_training(tmp_path: Path, ray_session,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the storage")

    monkeypatch.setattr(_CandidateTrainer, "train", no_training)
    monkeypatch.setattr(ray_session, "nodes", lambda: [{"Alive": True}, {"Alive": True}, {"Alive": False}])
    with pytest.raises(ValueError, match="runs on 2 machines: set auto_storage"):
        select_loss(MLP, auto_args(tmp_path, auto_backend="ray"), blobs(100, 1))


def test_ray_backend_without_ray_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    monkeypatch.setitem(sys.modules, "ray.tune", None)
    with pytest.raises(ImportError, match=r'auto_backend=ray needs ray.tune .*pip install "jal-trainer\[auto-ray\]"'):
        auto_args(tmp_path, auto_backend="ray")
    args = auto_args(tmp_path)  # optuna: fine; asking select_loss for ray fails before any training
    monkeypatch.setattr(_CandidateTrainer, "train", lambda *a, **k: pytest.fail("trained without ray"))
    with pytest.raises(ImportError, match="jal-trainer\\[auto-ray\\]"):
        select_loss(MLP, args, blobs(100, 1), backend="ray")
    assert not (tmp_path / SELECTION_FILE).exists()


def test_an_unknown_backend_fails_when_configured(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="auto_backend must be optuna or ray, got 'dask'"):
        auto_args(tmp_path, auto_backend="dask")


def test_each_trial_asks_ray_for_one_cpu_and_a_gpu_where_the_run_has_one(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray.tune")
    from jal_trainer.auto_search import _ray_options

    args = auto_args(tmp_path)
    options, space = _ray_options(args, str(tmp_path / "scratch"), ["ce", "gce"])
    assert options["resources_per_trial"] == {"cpu": 1}
    assert options["storage_path"] == str(tmp_path.resolve() / "scratch" / "ray")  # never the run folder
    assert options["raise_on_failed_trial"] is False and space(None) == {"loss_type": {"grid_search": ["ce", "gce"]}}
    monkeypatch.setattr(type(args), "n_gpu", property(lambda self: 2))  # as on a machine with two GPUs
    assert _ray_options(args, str(tmp_path), ["ce"])[0]["resources_per_trial"] == {"cpu": 1, "gpu": 1}
