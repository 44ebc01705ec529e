"""Every refused request gets a status and a JSON body ``{"detail": "<what to do>"}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from core.api.tokens import ScopeError, TokenError
from core.api.uploads import UploadError
from core.errors import DatabaseUnavailableError, InvalidInputError, NotFoundError, PermissionDeniedError, StudioError
from core.images import ImageRejectedError, UnsupportedImageError

log = logging.getLogger(__name__)

STATUSES: tuple[tuple[type[Exception], int], ...] = (  # the first match wins: subclasses first
    (TokenError, 401),
    (ScopeError, 403),
    (PermissionDeniedError, 403),  # the token's account's role may not (audited "denied", via "api")
    (NotFoundError, 404),
    (UnsupportedImageError, 415),
    (ImageRejectedError, 422),
    (InvalidInputError, 422),
    (DatabaseUnavailableError, 503),
    (StudioError, 409),  # e.g. a tool none of whose models can be used
)


def status_of(error: Exception) -> int:
    if isinstance(error, UploadError):
        return error.status
    return next(status for kind, status in STATUSES if isinstance(error, kind))


async def _refuse(request: Request, error: Exception) -> JSONResponse:
    status = status_of(error)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, error)
    return JSONResponse({"detail": str(error)}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    for kind in (UploadError, ImageRejectedError, StudioError):
        app.add_exception_handler(kind, _refuse)
