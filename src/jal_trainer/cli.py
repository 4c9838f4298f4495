"""The ``jal`` command: ``jal train``, ``jal report``, ``jal card``, ``jal push``.

Each subcommand lives in its own module as a ``main(argv)`` function, so it also runs in-process
(the tests call them that way).

Example:
    $ jal train --config recipes/quickstart.yaml
    $ jal report runs/quickstart
    $ jal push runs/quickstart --repo-id me/digits-jal
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("jal_trainer.train", "Train a classifier on noisy labels from a YAML recipe."),
    "report": ("jal_trainer.report", "Turn a finished run into its plots and tables."),
    "card": ("jal_trainer.hub", "Render the model card of a finished run."),
    "push": ("jal_trainer.hub", "Push a finished run (model and card) to the Hugging Face Hub."),
}


# What the library raises for bad input (a missing file is an OSError, a bad value a ValueError).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, LookupError)


def usage() -> str:
    lines = ["usage: jal <command> [options]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `jal <command> --help` for the options of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``jal <command> ...`` to the command's ``main``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"jal: unknown command {command!r}.\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    entry = getattr(module, f"{command}_main", None) or module.main
    from jal_trainer.run_safety import TrainingInterrupted

    try:
        result = entry(rest)
    except TrainingInterrupted as stop:  # Ctrl-C / SIGTERM: a checkpoint was saved
        print(f"jal {command}: {stop}", file=sys.stderr)
        return stop.exit_code
    except USER_ERRORS as err:  # mistakes in the input: one clear line, no traceback
        print(f"jal {command}: error: {err}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
