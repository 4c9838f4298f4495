"""The built wheel carries its recipes: installed into a fresh environment, the quickstart runs from an empty folder.

Nothing is downloaded: the wheel is built without build isolation, and the fresh environment sees
the packages of the interpreter running the tests (torch, transformers, ...) through a ``.pth``
line, while ``jal_trainer`` itself comes only from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str | os.PathLike[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([os.fspath(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _build_wheel(tmp: Path) -> Path:
    """Build from a copy of the sources, so the checkout gets no build/ or egg-info folders."""
    source = tmp / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", tmp / "dist", source, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("jal_trainer-*.whl")
    return wheel


def _fresh_env(tmp: Path, wheel: Path) -> Path:
    """A venv with the wheel installed and this interpreter's site-packages visible (no jal_trainer source)."""
    venv = tmp / "venv"
    _run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv, cwd=tmp)
    python = venv / "bin" / "python"
    purelib = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp).strip())
    # A plain path line: the test interpreter's packages, without running its own .pth files
    # (an editable install of jal_trainer there must not shadow the wheel).
    parents = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (purelib / "_test_interpreter.pth").write_text("\n".join(parents) + "\n")
    _run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", wheel, cwd=tmp)
    return venv


@pytest.mark.slow
def test_wheel_runs_the_quickstart_from_an_empty_folder(tmp_path: Path) -> None:
    venv = _fresh_env(tmp_path, _build_wheel(tmp_path))
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JAL_SHARED_DIR")}
    env.update(JAL_SHARED_DIR=str(tmp_path / "nowhere"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")

    # find_spec does not import the package (an import costs seconds): where it would load from
    where = _run(venv / "bin" / "python", "-c", "import importlib.util as u; print(u.find_spec('jal_trainer').origin)",
                 cwd=work, env=env)
    assert Path(where.strip()).is_relative_to(venv), where  # the wheel's copy, not the checkout's

    _run(venv / "bin" / "jal", "train", "--config", "quickstart", "--num_train_epochs", "1",
         "--disable_tqdm", "true", cwd=work, env=env)
    metrics = json.loads((work / "runs" / "quickstart" / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert (work / "runs" / "quickstart" / "model.safetensors").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["runs"]  # nothing else written beside the run
