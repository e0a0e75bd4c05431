"""Put the engine in front of tool calls made through common agent frameworks.

* :mod:`policylang.adapters.openai` — decide and run OpenAI tool calls (plain
  dicts or SDK objects; needs no extra package).
* :mod:`policylang.adapters.mcp` — guard an MCP client session (``mcp`` extra);
  denials come back as MCP tool errors.
* :mod:`policylang.adapters.langchain` — wrap a LangChain ``BaseTool``
  (``langchain`` extra).

Each module imports its framework lazily and says which extra to install when
it is missing.
"""
