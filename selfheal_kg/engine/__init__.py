"""The rule engine: rule files → JSON Schema → engine-neutral IR → durable-rules."""
