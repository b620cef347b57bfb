"""The HTTP API of selfheal-kg: OTLP/HTTP intake and the resource routers."""
