"""Monitoring: OTLP/HTTP intake, the series store, topology discovery, alerts."""
