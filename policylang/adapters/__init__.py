"""Put the engine in front of tool calls made through common agent frameworks.

* :mod:`policylang.adapters.openai` — decide and run OpenAI tool calls (plain
  dicts or SDK objects; needs no extra package).
* :mod:`policylang.adapters.mcp` — guard an MCP client session (``mcp`` extra);
  denials come back as MCP tool errors.
* :mod:`policylang.adapters.langchain` — wrap a LangChain ``BaseTool``
  (``langchain`` extra).

Each is a thin shim over :class:`policylang.runtime.guard.Guard`, the one path
from a tool call to running it (decide, approve, commit the limits, run with
the decided arguments, refund, audit the outcome), with the guard's one
approver protocol: ``approve(decision)``, sync or async, only ``True``
approves. Each module imports its framework lazily and says which extra to
install when it is missing.
"""
