"""The FastAPI application: composes the routers, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from api import errors
from api.routers import (
    admin,
    alerts,
    diagnose,
    heal,
    health,
    incidents,
    learn,
    otlp,
    playbooks,
    sparql,
)

if TYPE_CHECKING:
    from selfheal_kg.runtime import Runtime

ROUTERS = (
    otlp.router,
    health.router,
    sparql.router,
    incidents.router,
    diagnose.router,
    heal.router,
    playbooks.router,
    alerts.router,
    learn.router,
    admin.router,
)


def create_app(rt: Runtime) -> FastAPI:
    """Build the app around a runtime; the runtime's tick loop runs while the app serves."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = rt.start_background()
        try:
            yield
        finally:
            await rt.stop_background(task)

    app = FastAPI(
        title="selfheal-kg",
        version="0.1.0",
        description="OTLP/HTTP intake, SPARQL over the knowledge graph, incidents, healing.",
        lifespan=lifespan,
    )
    app.state.runtime = rt
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
