# The buggy-policy fixtures fail on purpose; the tests below run them explicitly.
collect_ignore = ["buggy"]
pytest_plugins = ["pytester"]
