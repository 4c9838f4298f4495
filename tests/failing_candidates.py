"""Make `auto`'s candidate trials fail on purpose, to test what a failed candidate leaves behind."""

from __future__ import annotations

import pytest

from jal_trainer.auto import _CandidateTrainer


def fail_candidates(monkeypatch: pytest.MonkeyPatch, message: str, only: str | None = None) -> None:
    """Every candidate trial (or only the one labelled ``only``) raises ``RuntimeError(message)`` once set up.

    Example:
        >>> fail_candidates(monkeypatch, "out of memory (simulated)", only="gce")  # doctest: +SKIP
    """
    original = _CandidateTrainer._hp_search_setup

    def broken(self, trial):
        original(self, trial)
        if only is None or self.current == only:
            raise RuntimeError(message)

    monkeypatch.setattr(_CandidateTrainer, "_hp_search_setup", broken)
