"""Fixture policies here are inputs to tests, not policies for the pytest plugin to run."""

collect_ignore = ["lint_cases", "format_cases"]
