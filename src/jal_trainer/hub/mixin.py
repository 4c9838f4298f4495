"""`ModelCardMixin`: the jal-trainer model card and a safe ``push_to_hub`` for a `transformers.Trainer`.

Example:
    >>> class MyTrainer(ModelCardMixin, Trainer): ...  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard

from jal_trainer.hub.card_data import JALCardData
from jal_trainer.hub.push import check_hub_access
from jal_trainer.hub.render import write_learning_curve
from jal_trainer.hub.run_folder import CARD_MARKER, LEARNING_CURVE, _listify



class ModelCardMixin:
    """Gives a `transformers.Trainer` subclass the jal-trainer model card and a safe ``push_to_hub``.

    Put it first in the bases, ``class JALTrainer(ModelCardMixin, Trainer)``. `Trainer.push_to_hub`
    calls ``self.create_model_card(model_name=..., **kwargs)`` before its upload, so the pushed
    README is this card.
    """

    def create_model_card(
        self,
        language: str | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Write ``README.md`` (and ``learning_curve.png``) in ``args.output_dir``.

        Same arguments as `transformers.Trainer.create_model_card`, plus `JALCardData` fields as
        keywords (``noise_type``, ``noise_rate``, ``noise_seed``, ``noise_column``,
        ``test_accuracy``, ``repo_id``, ...) for what a trainer cannot know.
        """
        if not self.is_world_process_zero():  # type: ignore[attr-defined]
            return
        out = Path(self.args.output_dir)  # type: ignore[attr-defined]
        out.mkdir(parents=True, exist_ok=True)
        readme = out / "README.md"
        tags = _listify(tags)
        if readme.is_file():  # keep the tags of a card written by another tool, as the Trainer does
            existing = ModelCard.load(readme, ignore_metadata_errors=True)
            if CARD_MARKER not in existing.text:
                tags += [t for t in existing.data.tags or [] if t not in tags]
        given = {"language": language, "license": license, "tags": tags or None, "model_name": model_name,
                 "finetuned_from": finetuned_from, "tasks": tasks, "dataset_tags": dataset_tags, "dataset": dataset,
                 "dataset_args": dataset_args}  # fmt: skip
        args = self.args  # type: ignore[attr-defined]
        hub_model_id = getattr(self, "hub_model_id", None) or args.hub_model_id
        if hub_model_id:
            kwargs.setdefault("repo_id", hub_model_id)
        data = JALCardData.from_trainer(self, **{k: v for k, v in given.items() if v is not None}, **kwargs)
        if write_learning_curve(data.log_history, out / LEARNING_CURVE, data.model_name):
            data.learning_curve = LEARNING_CURVE
        data.to_model_card().save(readme)

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """`Trainer.push_to_hub`, after checking that the Hub can be written to (offline mode, token,
        network) so that a doomed push fails before it saves anything. Raises `HubUnavailableError`."""
        token = check_hub_access(token or self.args.hub_token)  # type: ignore[attr-defined]
        return super().push_to_hub(  # type: ignore[misc]
            commit_message=commit_message, blocking=blocking, token=token, revision=revision, private=private,
            **kwargs,
        )



__all__ = ["ModelCardMixin"]
