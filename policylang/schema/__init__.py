"""Tool schemas from elsewhere → policylang ``tool`` declarations, and drift checks.

:mod:`policylang.schema.jsonschema` reads JSON Schema, OpenAI function / tool
definitions, MCP ``tools/list`` results and pydantic models, and writes ``tool``
declarations plus ``deny`` rules for the constraints the type system cannot
say (ranges, lengths, patterns). :mod:`policylang.schema.drift` compares such
schemas with a loaded policy and reports what no longer matches.
"""

from policylang.schema.jsonschema import (
    ImportResult,
    ToolSpec,
    import_tools,
    load_document,
    specs_from_document,
    tools_from_models,
    tools_to_policy,
)

__all__ = [
    "ImportResult",
    "ToolSpec",
    "import_tools",
    "load_document",
    "specs_from_document",
    "tools_from_models",
    "tools_to_policy",
]
