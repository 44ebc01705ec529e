"""Token authentication of API requests: ``Authorization: Bearer <token>`` with a scope."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.api.tokens import TokenInfo, token_actor
from core.audit import Actor

bearer = HTTPBearer(auto_error=False, description="An API token (`python -m core api-tokens create NAME`)")


def require(scope: str) -> Callable[..., TokenInfo]:
    """A dependency that lets a request through when its token holds ``scope`` (401 / 403 otherwise).
    A sync function: FastAPI runs its database lookup in the thread pool, off the event loop."""

    def check(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> TokenInfo:
        return request.app.state.tokens.check(credentials.credentials if credentials else None, scope)

    return check


def acting_as(scope: str) -> Callable[..., Actor]:
    """A dependency giving the request's actor: the token's account (its role, ``via="api"``, the client's
    address as the device), after the scope check of ``require``. The services then check the
    permission matrix for it, as for a page or the CLI, and audit refusals."""
    checked = require(scope)

    def actor(request: Request, info: TokenInfo = Depends(checked)) -> Actor:
        device = f"api {request.client.host}" if request.client else "api"
        return token_actor(request.app.state.studio, info, device, via="api")

    return actor
