"""The demo shop: five instrumented services as real OS processes, load, and faults."""
