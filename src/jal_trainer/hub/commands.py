"""The ``jal card`` and ``jal push`` commands: a ``make_parser()`` and a ``main()`` each.

Example:
    $ jal card runs/cifar10-sym-0.8 --out model_cards/cifar10-sym-0.8-jal-ce.md
    $ jal push runs/cifar10-sym-0.8 --repo-id me/cnn8-cifar10-sym80-jal-ce --dry-run
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jal_trainer.hub.push import push_run
from jal_trainer.hub.render import render_card
from jal_trainer.hub.run_folder import HubUnavailableError


def _run_folder_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A command's parser whose first argument is the run folder of `jal train`."""
    parser = argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False)
    parser.add_argument("output_dir", help="The run folder (the output_dir of `jal train`).")
    return parser


def make_card_parser() -> argparse.ArgumentParser:
    """The ``jal card`` parser."""
    parser = _run_folder_parser("jal card", "Render the model card of a finished jal train run.")
    parser.add_argument("--out", default=None, help="Card path, e.g. model_cards/NAME.md (default: in output_dir).")
    parser.add_argument("--model-name", default=None, help="Name in the card and its model-index (default: folder).")
    parser.add_argument("--repo-id", default=None, help="Hub repo the model is or will be at, for the usage snippet.")
    parser.add_argument("--license", default=None, help="License id for the card metadata, e.g. apache-2.0.")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing file at --out.")
    return parser


def card_main(argv: list[str] | None = None) -> int:
    """``jal card <output_dir> [--out model_cards/NAME.md]``."""
    args = make_card_parser().parse_args(argv)
    overrides = _cli_overrides(args)
    path = render_card(args.output_dir, args.out, overwrite=args.overwrite, **overrides)
    print(f"Model card written to {path}")
    return 0


def _cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    values = {"model_name": args.model_name, "repo_id": args.repo_id, "license": args.license}
    if args.repo_id and not args.model_name:
        values["model_name"] = args.repo_id.split("/")[-1]
    return {k: v for k, v in values.items() if v is not None}


def make_push_parser() -> argparse.ArgumentParser:
    """The ``jal push`` parser."""
    parser = _run_folder_parser("jal push", "Push a finished `jal train` run to the Hub.")
    parser.add_argument("--repo-id", required=True, help="Model repo on the Hub, user/name (created if missing).")
    parser.add_argument("--token", default=None, help="Write token (default: HF_TOKEN or the `hf auth login` one).")
    parser.add_argument("--private", action="store_true", help="Create the repo private.")
    parser.add_argument("--commit-message", default="Upload model trained on noisy labels with jal-trainer")
    parser.add_argument("--revision", default=None, help="Branch to push to (default main).")
    parser.add_argument("--model-name", default=None, help="Name in the card and its model-index (default: repo name).")
    parser.add_argument("--license", default=None, help="License id for the card metadata, e.g. apache-2.0.")
    parser.add_argument("--dry-run", action="store_true",
                        help="List the files that would be uploaded, with their sizes; contact nobody.")
    return parser


def push_main(argv: list[str] | None = None) -> int:
    """``jal push <output_dir> --repo-id user/name [--dry-run]``: 0 on success, 1 when the Hub is unavailable."""
    args = make_push_parser().parse_args(argv)
    overrides = {k: v for k, v in {"model_name": args.model_name, "license": args.license}.items() if v}
    try:
        result = push_run(args.output_dir, args.repo_id, token=args.token, private=args.private,
                          commit_message=args.commit_message, revision=args.revision, dry_run=args.dry_run,
                          **overrides)  # fmt: skip
    except HubUnavailableError as err:
        print(f"jal push: error: {err}", file=sys.stderr)
        return 1
    if args.dry_run:
        print(f"Would upload to {args.repo_id}:")
        for name, size in result:
            print(f"  {size:>12,d}  {name}")
        print(f"  {sum(s for _, s in result):>12,d}  bytes in {len(result)} files")
        return 0
    print(f"Pushed {args.output_dir} to {getattr(result, 'commit_url', result)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m jal_trainer.hub {card,push} ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    commands = {"card": card_main, "push": push_main}
    if not args or args[0] not in commands:
        print("usage: python -m jal_trainer.hub {card,push} ...", file=sys.stderr)
        return 2
    return commands[args[0]](args[1:])
