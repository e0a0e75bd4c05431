"""The runtime stage: values and functions, the engine, decisions, stores, audit."""
