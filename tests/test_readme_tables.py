"""The README's results table is the committed report's, not a hand-edited copy that drifted."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def table_after(lines: list[str], start: int) -> list[str]:
    """The first Markdown table (its contiguous ``|``-rows) after ``lines[start]``."""
    rows: list[str] = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    return rows


def test_readme_glance_table_matches_the_finetune_report() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    report = (ROOT / "recipes/results/finetune_table.md").read_text().splitlines()
    in_readme = table_after(readme, readme.index("<!-- glance:start -->"))
    in_report = table_after(report, report.index("## At a glance"))
    assert len(in_report) > 10, "the report lost its 'At a glance' table: rerun python recipes/bench_finetune.py"
    assert in_readme == in_report, ("README's glance table differs from recipes/results/finetune_table.md's: copy "
                                    "the report's table between <!-- glance:start --> and <!-- glance:end -->")
