"""Model cards and Hub uploads of robust models: ``jal card`` and ``jal push``, cut by concept.

- `jal_trainer.hub.run_folder`: what a finished run folder says (records, base model, data set,
  the Theorem 4.1 check of AMSE's ``a``);
- `jal_trainer.hub.card_data`: `JALCardData`, the card's content, from a run or a live trainer;
- `jal_trainer.hub.render`: the Jinja rendering, the learning curve and `render_card`;
- `jal_trainer.hub.push`: `push_run`, uploading only what a model repository holds;
- `jal_trainer.hub.mixin`: `ModelCardMixin`, the card and a safe ``push_to_hub`` for `JALTrainer`;
- `jal_trainer.hub.commands`: the ``jal card`` and ``jal push`` commands.

Vision models of `jal_trainer.models` are registered with the transformers Auto classes when that
module is imported: loading one back needs ``pip install jal-trainer`` and ``import
jal_trainer.models`` (no modelling code is uploaded, so no ``trust_remote_code``).

Example:
    >>> from jal_trainer.hub import JALCardData
    >>> card = JALCardData.from_run("runs/cifar10-sym-0.8").to_model_card()  # doctest: +SKIP

    $ jal card runs/cifar10-sym-0.8 --out model_cards/cifar10-sym-0.8-jal-ce.md
    $ jal push runs/cifar10-sym-0.8 --repo-id me/cnn8-cifar10-sym80-jal-ce
"""

from __future__ import annotations

from jal_trainer.hub.card_data import JALCardData
from jal_trainer.hub.commands import card_main, main, make_card_parser, make_push_parser, push_main
from jal_trainer.hub.mixin import ModelCardMixin
from jal_trainer.hub.push import (
    PUSH_ALLOW,
    check_hub_access,
    push_files,
    push_run,
    sanitised_recipe,
    sanitised_versions,
    upload_operations,
)
from jal_trainer.hub.render import learning_curve_png, render_card, write_learning_curve
from jal_trainer.hub.run_folder import (
    PAPER_BIBTEX,
    TEMPLATE_PATH,
    ACheck,
    HubUnavailableError,
    base_model_id,
    check_a,
    memorisation_rows,
    noisy_label_accuracy,
    resolve_loss_params,
)


__all__ = [
    "ACheck",
    "HubUnavailableError",
    "JALCardData",
    "ModelCardMixin",
    "PAPER_BIBTEX",
    "PUSH_ALLOW",
    "TEMPLATE_PATH",
    "base_model_id",
    "card_main",
    "check_a",
    "check_hub_access",
    "learning_curve_png",
    "main",
    "make_card_parser",
    "make_push_parser",
    "memorisation_rows",
    "noisy_label_accuracy",
    "push_files",
    "push_main",
    "push_run",
    "render_card",
    "resolve_loss_params",
    "sanitised_recipe",
    "sanitised_versions",
    "upload_operations",
    "write_learning_curve",
]
