"""How long ``policylang lint`` takes on a folder of 1,000 rules (target: under 1 s).

Generates a policy folder (a main file with the header, then 10 files of 100
rules over 50 tools), runs the lint command's own pipeline (read, parse, check,
lint) a few times and prints the best and median wall time.

    python benchmarks/lint_speed.py [--rules 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from policylang.cli.lint import lint_paths


def generate(folder: Path, rules: int, tools: int = 50, files: int = 10) -> None:
    (folder / "main.policy").write_text(
        'policy bench version "1"\ndefault deny\nprincipal { id: string, role: string }\n'
        + "".join(
            f"tool svc{t}.call {{ amount: number, to: string, note: string? }}\n"
            for t in range(tools)
        ),
        encoding="utf-8",
    )
    per_file = max(rules // files, 1)
    n = 0
    for f in range(files):
        lines = []
        for _ in range(per_file):
            if n >= rules:
                break
            t = n % tools
            kind = n % 4
            if kind == 0:
                lines.append(
                    f'allow svc{t}.call when principal.role == "r{n % 7}" '
                    f'&& args.amount < {n + 100} because "ok {n}"'
                )
            elif kind == 1:
                lines.append(
                    f'deny svc{t}.call when args.amount > {n * 10 + 5000} because "cap {n}"'
                )
            elif kind == 2:
                lines.append(
                    f'confirm svc{t}.call when args.to in ["a{n}", "b{n}"] '
                    f'&& args.amount >= {n} because "check {n}"'
                )
            else:
                lines.append(
                    f'deny svc{t}.call when has(args.note) && args.note.contains("x{n}") '
                    f'because "note {n}"'
                )
            n += 1
        (folder / f"rules_{f:02d}.policy").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate(folder, opts.rules)
        times = []
        found = []
        for _ in range(opts.repeat):
            start = time.perf_counter()
            found, _ = lint_paths([str(folder)])
            times.append(time.perf_counter() - start)
    print(
        f"lint of {opts.rules} rules: best {min(times):.3f} s, median {statistics.median(times):.3f} s "
        f"({len(found)} findings; target < 1 s)"
    )


if __name__ == "__main__":
    main()
