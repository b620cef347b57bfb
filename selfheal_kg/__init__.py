"""selfheal-kg: a self-healing expert system for services observed through OpenTelemetry."""

__version__ = "0.1.0"
