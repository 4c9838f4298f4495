"""``jal push``: upload a finished run to the Hub, only what a model repository holds.

Every check (run folder, links leaving it, repo id, offline mode, token, network) happens before
the first write; the run folder is never modified. ``--dry-run`` lists the files and sizes.

Example:
    >>> from jal_trainer.hub import push_run
    >>> push_run("runs/quickstart", "me/cnn8-digits-jal", dry_run=True)  # doctest: +SKIP
    [('README.md', 7312), ('config.json', 934), ...]
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import HfApi, get_token
from huggingface_hub.utils import validate_repo_id

from jal_trainer.hub.card_data import JALCardData
from jal_trainer.hub.render import learning_curve_png
from jal_trainer.hub.run_folder import (
    LEARNING_CURVE,
    WEIGHT_FILES,
    HubUnavailableError,
    _read_json,
    _read_recipe,
    base_model_id,
)

# What a model repository holds (top-level names; nothing in sub-folders is uploaded).
PUSH_ALLOW = (
    "model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json",
    "pytorch_model.bin", "pytorch_model-*-of-*.bin", "pytorch_model.bin.index.json",
    "config.json", "generation_config.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
    "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "chat_template.jinja",
    "preprocessor_config.json", "processor_config.json", "image_processor_config.json",
    "memorisation.png", "metrics.json", "all_results.json", "train_results.json", "eval_results.json",
    "trainer_state.json", "memorisation.json", "noise_report.json", "label_issues.json",
)  # fmt: skip
# Uploaded from memory: generated (card, curve) or sanitised (recipe, versions).
FROM_MEMORY = ("README.md", LEARNING_CURVE, "recipe.yaml", "versions.json")

def _offline() -> bool:
    """Offline mode, read now (not at import) so that a later ``HF_HUB_OFFLINE=1`` counts too."""
    from huggingface_hub import constants

    env = (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "").strip().upper()
    return constants.is_offline_mode() or env in ("1", "ON", "YES", "TRUE")


def check_hub_access(token: str | None = None, api: HfApi | None = None) -> str:
    """Fail fast, before anything is saved or uploaded, when the Hub cannot be written to.

    Args:
        token: a write token; default the logged-in one (``HF_TOKEN`` or ``hf auth login``).
        api: the client to ask (default a new `HfApi`).

    Returns:
        The token to use.

    Raises:
        HubUnavailableError: offline mode, no token, no network or a rejected token; the
            message says how to fix it.
    """
    if _offline():
        raise HubUnavailableError(
            "Offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set), so nothing can be pushed. "
            "Unset it on a machine with network access and push again; the run folder is unchanged."
        )
    token = token or get_token()
    if not token:
        raise HubUnavailableError(
            "No Hugging Face token: run `hf auth login`, set HF_TOKEN, or pass --token with a write token. "
            "The run folder is unchanged."
        )
    try:
        (api or HfApi()).whoami(token=token)
    except Exception as err:  # network errors and HTTP 401 arrive as several exception types
        raise HubUnavailableError(
            f"Cannot reach the Hugging Face Hub with this token ({err.__class__.__name__}: {err}). Check the network "
            "and that the token is valid and has write access. The run folder is unchanged."
        ) from err
    return token


def _check_run_folder(run_dir: str | os.PathLike[str]) -> Path:
    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(f"Run folder {os.fspath(run)!r} does not exist; pass the output_dir of a `jal train` run.")
    missing = [name for name in ("config.json", "recipe.yaml") if not (run / name).is_file()]
    if not any((run / name).is_file() for name in WEIGHT_FILES):
        missing.append("model weights (model.safetensors)")
    if missing:
        raise ValueError(
            f"{run} is not a finished `jal train` run: missing {', '.join(missing)}. Push the output_dir of a run "
            "that completed (it saves the model, recipe.yaml and metrics.json at the end)."
        )
    return run


def push_files(run_dir: Path) -> list[Path]:
    """The run-folder files a push uploads: top-level files matching `PUSH_ALLOW`, sorted.

    Raises:
        ValueError: an allowed name is a link (or in a linked folder) whose real path leaves the run
            folder; nothing outside the folder is ever uploaded.
    """
    root = Path(os.path.realpath(run_dir))
    files = []
    for path in sorted(run_dir.iterdir()):
        if not any(fnmatch.fnmatchcase(path.name, pattern) for pattern in PUSH_ALLOW) or path.name in FROM_MEMORY:
            continue
        real = Path(os.path.realpath(path))
        if root not in real.parents:
            raise ValueError(
                f"{path} points outside the run folder (to {real}); it is not uploaded. Copy the file into "
                f"{run_dir} instead of linking it, or remove the link."
            )
        if real.is_file():
            files.append(path)
    return files


def sanitised_recipe(run_dir: Path) -> bytes:
    """``recipe.yaml`` without local paths: an absolute or ``~``/``${shared}`` path keeps only its last
    part (the model: its Hub id when known), so no folder of this machine is published."""
    recipe = _read_recipe(run_dir)
    for key, value in recipe.items():
        if isinstance(value, str) and (os.path.isabs(value) or value.startswith(("~", "${"))):
            recipe[key] = (base_model_id(value) if key == "model" else None) or Path(value.rstrip("/")).name
    return yaml.safe_dump(recipe, sort_keys=False).encode("utf-8")


def sanitised_versions(run_dir: Path) -> bytes | None:
    """``versions.json`` without the platform string (it names this machine's kernel and distribution)."""
    versions = _read_json(run_dir / "versions.json")
    if not isinstance(versions, dict):
        return None
    return json.dumps({k: v for k, v in versions.items() if k != "platform"}, indent=2).encode("utf-8")


def upload_operations(run_dir: Path, readme: str, learning_curve: bytes | None) -> list[Any]:
    """The files of a push: the allowed run files (`push_files`), the sanitised recipe and versions,
    the README and the learning curve.

    What is generated or sanitised is uploaded from memory, so pushing never writes into the run folder.
    """
    from huggingface_hub import CommitOperationAdd

    operations = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p)) for p in push_files(run_dir)]
    generated = {"README.md": readme.encode("utf-8"), LEARNING_CURVE: learning_curve,
                 "recipe.yaml": sanitised_recipe(run_dir), "versions.json": sanitised_versions(run_dir)}
    for name, payload in generated.items():
        if payload is not None:
            operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=payload))
    return sorted(operations, key=lambda op: op.path_in_repo)


def operation_sizes(operations: list[Any]) -> list[tuple[str, int]]:
    """(path in the repo, bytes) of each upload, for ``jal push --dry-run``."""
    sizes = []
    for op in operations:
        payload = op.path_or_fileobj
        size = len(payload) if isinstance(payload, bytes) else Path(payload).stat().st_size
        sizes.append((op.path_in_repo, size))
    return sizes


def push_run(
    output_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload model trained on noisy labels with jal-trainer",
    revision: str | None = None,
    dry_run: bool = False,
    **overrides: Any,
) -> Any:
    """Push a finished run (model, tokenizer or processor, run records, card, plot) to the Hub.

    Only the files a model repository holds are uploaded (`PUSH_ALLOW`): weights, config,
    tokenizer or processor files, the card and its plots, metrics, the resolved recipe (without
    local paths), versions (without the platform), the noise report and the label-issue summary.

    Every check (run folder, repo id, offline mode, token, network) happens before the first
    write; the run folder is never modified.

    Args:
        output_dir: the run's ``output_dir``.
        repo_id: ``user/name`` of the model repo (created if missing).
        token: write token (default the logged-in one).
        private: create the repo private.
        commit_message: message of the Hub commit.
        revision: branch to push to (default main).
        dry_run: check the run and return ``[(path in repo, bytes), ...]`` without any Hub call.
        **overrides: `JALCardData` fields (``license``, ``model_name``, ...).

    Returns:
        The `huggingface_hub.CommitInfo` of the upload (with ``dry_run``, the file list).

    Raises:
        ValueError: not a finished run, or an invalid repo id.
        HubUnavailableError: offline, no token, no network or a rejected token.
    """
    import jal_trainer

    run = _check_run_folder(output_dir)
    try:
        validate_repo_id(repo_id)
    except ValueError as err:
        raise ValueError(f"Invalid --repo-id {repo_id!r}: {err} Use the form user/model-name.") from err
    push_files(run)  # links out of the folder fail here, before any Hub call
    api = HfApi(library_name="jal-trainer", library_version=jal_trainer.__version__)
    if not dry_run:
        token = check_hub_access(token, api)

    overrides.setdefault("model_name", repo_id.split("/")[-1])
    data = JALCardData.from_run(run, repo_id=repo_id, **overrides)
    png = learning_curve_png(data.log_history, data.model_name)
    data.learning_curve = LEARNING_CURVE if png is not None else None
    from jal_trainer.ner.card import is_token_run, token_card

    card = token_card(run, data.model_name) if is_token_run(run) else data.to_model_card()
    operations = upload_operations(run, str(card), png)
    if dry_run:
        return operation_sizes(operations)

    api.create_repo(repo_id, token=token, private=private, exist_ok=True)
    return api.create_commit(
        repo_id=repo_id, operations=operations, commit_message=commit_message, token=token, revision=revision
    )
