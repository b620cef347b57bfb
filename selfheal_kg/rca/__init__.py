"""Root cause analysis on the dependency graph."""
