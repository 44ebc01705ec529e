"""Token authentication of API requests: ``Authorization: Bearer <token>`` with a scope."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.api.tokens import TokenInfo

bearer = HTTPBearer(auto_error=False, description="An API token (`python -m core api-tokens create NAME`)")


def require(scope: str) -> Callable[..., TokenInfo]:
    """A dependency that lets a request through when its token holds ``scope`` (401 / 403 otherwise).
    A sync function: FastAPI runs its database lookup in the thread pool, off the event loop."""

    def check(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> TokenInfo:
        return request.app.state.tokens.check(credentials.credentials if credentials else None, scope)

    return check
