"""The benchmark's Markdown tables read back into numbers (what benchmarks/plot.py draws)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.plot import read_table

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_results_read_back_for_every_size() -> None:
    text = (ROOT / "benchmarks" / "results.md").read_text("utf-8")
    medians = read_table(text, "median")
    assert set(medians["policylang"]) == {5, 10, 100, 1000}
    assert "regorus" not in medians  # not timed: no numbers, no line
    means = read_table(text, "mean")
    assert all(
        means["policylang"][n] >= medians["policylang"][n] * 0.5 for n in medians["policylang"]
    )


def test_a_table_reads_its_own_columns() -> None:
    text = """### 5 tools, 15 rules

| engine | status | median µs | mean µs | p99 µs |
|---|---|---:|---:|---:|
| a | ok | 1.5 | 2 | 9 |
| b | unavailable | — | — | — |
| c | ok | 1,234 | 1,300 | 2,000 |
"""
    assert read_table(text, "median") == {"a": {5: 1.5}, "c": {5: 1234.0}}
    assert read_table(text, "mean") == {"a": {5: 2.0}, "c": {5: 1300.0}}
