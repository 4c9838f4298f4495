"""The ``jal`` command: ``jal train``, ``jal clean``, ``jal report``, ``jal card``, ``jal push``, ``jal recipes``.

One `argparse` parser with a subparser per command (`make_parser`); each command lives in its own
module with its own ``make_parser()`` and ``main(argv)``, so it also runs in-process (the tests
call them that way) and as ``python -m``. Mistakes in the input end as one line on stderr and
exit status 2, without a traceback; Ctrl-C during training exits 130 after saving a checkpoint.

Example:
    $ jal recipes
    $ jal train --config quickstart
    $ jal report runs/quickstart
    $ jal push runs/quickstart --repo-id me/digits-jal --dry-run
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, name of its main in that module, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("jal_trainer.train", "main", "Train a classifier on noisy labels from a YAML recipe."),
    "clean": ("jal_trainer.clean", "main", "Drop or relabel a run's flagged labels and retrain with its recipe."),
    "report": ("jal_trainer.report", "main", "Turn a finished run into its plots and tables."),
    "card": ("jal_trainer.hub.commands", "card_main", "Render the model card of a finished run."),
    "push": ("jal_trainer.hub.commands", "push_main", "Push a finished run (model and card) to the Hugging Face Hub."),
    "recipes": ("jal_trainer.recipes", "main", "List the recipes that ship with the package, one line each."),
}

# What the library raises for bad input (a missing file is an OSError, a bad value a ValueError).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, LookupError)


def make_parser() -> argparse.ArgumentParser:
    """``jal <command> ...``: a subparser per command; each command parses its own options."""
    parser = argparse.ArgumentParser(prog="jal", allow_abbrev=False,
                                     description="Train classifiers on noisy labels with the Joint Asymmetric Loss.",
                                     epilog="Run `jal <command> --help` for the options of a command.")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", title="commands")
    for name, (_, _, help_) in COMMANDS.items():
        # the command's own parser reads the rest (add_help=False: its --help is the command's)
        subparsers.add_parser(name, help=help_, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``jal <command> ...`` to the command's ``main``; return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    if not args or args[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"jal: error: unknown command {command!r}; choose one of {', '.join(COMMANDS)} "
              "(`jal --help` lists them).", file=sys.stderr)
        return 2
    module_name, entry_name, _ = COMMANDS[command]
    entry = getattr(importlib.import_module(module_name), entry_name)
    from jal_trainer.run_safety import TrainingInterrupted

    try:
        result = entry(rest)
    except BrokenPipeError:  # `jal recipes | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0
    except TrainingInterrupted as stop:  # Ctrl-C / SIGTERM: a checkpoint was saved
        print(f"jal {command}: {stop}", file=sys.stderr)
        return stop.exit_code
    except USER_ERRORS as err:  # mistakes in the input: one clear line, no traceback
        print(f"jal {command}: error: {err}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
