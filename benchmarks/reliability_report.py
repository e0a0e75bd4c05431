"""Run the reliability suite (tests/reliability) and print its measured figures as Markdown.

    python benchmarks/reliability_report.py            # thorough sizes (POLICYLANG_THOROUGH=1)
    python benchmarks/reliability_report.py --ci       # the CI sizes (fast)
    python benchmarks/reliability_report.py -k redis   # only some tests (passed on to pytest)

Each test that measures something appends it to a JSON Lines file named by
POLICYLANG_FIGURES (see tests/reliability/conftest.py); this script collects them into a
table: figure, measured value, and the command that reproduces it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument(
        "--ci", action="store_true", help="use the CI sizes instead of the thorough ones"
    )
    ap.add_argument("-k", default=None, help="pytest -k expression")
    args = ap.parse_args(argv)
    env = dict(os.environ)
    env["HYPOTHESIS_PROFILE"] = "ci"
    if args.ci:
        env.pop("POLICYLANG_THOROUGH", None)
    else:
        env["POLICYLANG_THOROUGH"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp) / "figures.jsonl"
        env["POLICYLANG_FIGURES"] = str(figures)
        cmd = [sys.executable, "-m", "pytest", "tests/reliability", "-p", "no:cacheprovider"]
        if args.k:
            cmd += ["-k", args.k]
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        took = time.monotonic() - started
        rows = [json.loads(x) for x in figures.read_text().splitlines()] if figures.exists() else []
    summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    mode = "CI" if args.ci else "thorough"
    prefix = "HYPOTHESIS_PROFILE=ci " + ("" if args.ci else "POLICYLANG_THOROUGH=1 ")
    print(f"### Reliability figures ({mode} sizes; suite ran in {took:.0f} s: {summary})\n")
    print("| figure | measured | reproduce |")
    print("| --- | --- | --- |")
    for r in rows:
        value = f"{r['value']} {r['unit']}".strip()
        test = r["test"].split("[")[0] if r["test"] else "tests/reliability"
        print(f"| {r['name'].strip(' .')} | {value} | `{prefix}python -m pytest '{test}' -q -s` |")
    if proc.returncode != 0:
        print("\nSome reliability tests failed:\n", file=sys.stderr)
        print(proc.stdout[-5000:], file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
