"""The compiler stage: checked policy → Python evaluators indexed by tool."""
