"""Helpers of the reliability suite, importable by its tests under a name no other module has.

(``from conftest import ...`` would pick whichever conftest.py was imported first.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

THOROUGH = os.environ.get("POLICYLANG_THOROUGH") == "1"
REPO = Path(__file__).resolve().parents[2]


def scale(ci: int, thorough: int) -> int:
    """A size for this run: ``ci`` normally, ``thorough`` when POLICYLANG_THOROUGH=1."""
    return thorough if THOROUGH else ci


def record_figure(name: str, value: float | int | str, unit: str = "", test: str = "") -> None:
    """Print a measured figure and, when POLICYLANG_FIGURES is set, append it to that file."""
    print(f"[figure] {name}: {value} {unit}".rstrip())
    path = os.environ.get("POLICYLANG_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(
                json.dumps(
                    {"name": name, "value": value, "unit": unit, "test": test, "thorough": THOROUGH}
                )
                + "\n"
            )
