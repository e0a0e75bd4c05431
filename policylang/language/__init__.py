"""The language stage: text → AST → checked AST, plus the formatter."""
