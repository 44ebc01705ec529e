"""The REST API's app factory: ``create_app(studio)`` (served by ``python -m core api``)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from core.api.errors import install_error_handlers
from core.api.metrics import ApiMetrics, MetricsMiddleware
from core.api.routes import router
from core.api.tokens import TokenChecker
from core.config import api_max_upload_bytes
from core.studio import Studio

DESCRIPTION = """Inspect images with the studio's tools over HTTP.

Every route but `/healthz` needs an API token (`Authorization: Bearer <token>`), made with
`python -m core api-tokens create NAME --scopes inspect` or on the API tokens page. Scopes: `read`
(tools, inspections, metrics), `inspect` (also inspect images), `admin` (everything).
"""


def create_app(studio: Studio, *, max_upload_bytes: int | None = None) -> FastAPI:
    """An app serving ``studio``; ``max_upload_bytes`` defaults to ``STUDIO_API_MAX_UPLOAD_MB``."""
    # FastAPIOffline serves Swagger UI and ReDoc from files in its package: a factory PC is offline,
    # and plain FastAPI loads them from a CDN (a blank /docs page without internet).
    app = FastAPIOffline(title="Inspection studio API", version="1", description=DESCRIPTION)
    app.state.studio = studio
    app.state.tokens = TokenChecker(studio)
    app.state.metrics = ApiMetrics()
    app.state.max_upload_bytes = max_upload_bytes or api_max_upload_bytes()
    app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
