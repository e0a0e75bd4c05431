"""Testing policies: example cases, property checks of ``assert`` statements, strategies.

>>> from policylang import Engine
>>> from policylang.testing import requests, run_path
>>> engine = Engine.from_path("rules/")
>>> strategy = requests(engine, "payments.send")   # a Hypothesis strategy of request dicts
>>> report = run_path("rules/")                    # what `policylang test rules/` runs
"""

from policylang.testing.cases import (
    Case,
    CaseResult,
    coverage,
    find_case_files,
    load_cases,
    run_case,
)
from policylang.testing.properties import (
    CheckResult,
    Harness,
    auto_checks,
    check_assertion,
    explore,
)
from policylang.testing.runner import Report, run_path, summary_table, write_junit
from policylang.testing.strategies import RequestSpace, collect_constants, requests

__all__ = [
    "requests",
    "RequestSpace",
    "collect_constants",
    "Case",
    "CaseResult",
    "load_cases",
    "find_case_files",
    "run_case",
    "coverage",
    "CheckResult",
    "Harness",
    "explore",
    "auto_checks",
    "check_assertion",
    "Report",
    "run_path",
    "summary_table",
    "write_junit",
]
