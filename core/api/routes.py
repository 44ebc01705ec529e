"""The API's routes. Each is a thin call into ``core``: inspection is ``core.inspect.service.predict_image``
(the one path ``predict`` and the Photo tab take), run in a worker thread so the event loop keeps serving."""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from core.api.auth import acting_as, require
from core.api.metrics import CONTENT_TYPE
from core.api.uploads import read_image_upload
from core.audit import Actor
from core.errors import DatabaseUnavailableError
from core.inspect.models import describe_tool
from core.inspect.recorder import RecordContext
from core.inspect.service import predict_image
from core.inspections import inspection_json
from core.tools import list_tools

router = APIRouter()

IMAGE = {"schema": {"type": "string", "format": "binary"}}
INSPECT_BODY = {"requestBody": {"required": True, "description": "the image (PNG, JPEG, BMP or TIFF)", "content": {
    "image/png": IMAGE, "image/jpeg": IMAGE, "image/bmp": IMAGE, "image/tiff": IMAGE,
    "application/octet-stream": IMAGE,
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}}}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, invalid or revoked token"}, 403: {"description": "the token lacks the scope"},
    404: {"description": "unknown tool or inspection"}}
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS, 413: {"description": "upload over the size cap"},
    415: {"description": "not an image, or an unsupported content type"},
    422: {"description": "an image that cannot be decoded or is too large in pixels"}}


@router.get("/healthz", tags=["service"], summary="Liveness and database check (no token)")
def healthz(request: Request) -> JSONResponse:
    try:
        with request.app.state.studio.transaction() as session:
            session.execute(text("SELECT 1"))
    except DatabaseUnavailableError as error:
        return JSONResponse({"status": "unavailable", "database": str(error)}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics", tags=["service"], summary="Prometheus metrics (scope read)",
            dependencies=[Depends(require("read"))], responses=ERRORS)
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.text(), media_type=CONTENT_TYPE)


@router.get("/v1/tools", tags=["tools"], summary="Every tool (scope read)", responses=ERRORS)
def tools(request: Request, _: Any = Depends(require("read"))) -> list[dict[str, Any]]:
    return [tool.as_dict() for tool in list_tools(request.app.state.studio)]


@router.get("/v1/tools/{name}", tags=["tools"], summary="A tool and the models that decide (scope read)",
            responses=ERRORS)
def tool(request: Request, name: str, _: Any = Depends(require("read"))) -> dict[str, Any]:
    return describe_tool(request.app.state.studio, name)


@router.get("/v1/inspections/{inspection_id}", tags=["inspections"], summary="A recorded inspection (scope read)",
            responses=ERRORS)
def inspection(request: Request, inspection_id: int, _: Any = Depends(require("read"))) -> dict[str, Any]:
    return inspection_json(request.app.state.studio, inspection_id)


@router.post("/v1/tools/{name}/inspect", tags=["inspections"], openapi_extra=INSPECT_BODY, responses=UPLOAD_ERRORS,
             summary="Inspect one image (scope inspect); the same JSON as `python -m core predict`")
async def inspect(
    request: Request,
    name: str,
    record: bool = Query(True, description="record the inspection (its id is in the answer)"),
    roi: Literal["auto", "crop", "whole"] = Query("auto", description="crop to the tool's region of interest"),
    station: str | None = Query(None, max_length=100, description="station recorded (default: the server's)"),
    actor: Actor = Depends(acting_as("inspect")),
) -> JSONResponse:
    filename, data = await read_image_upload(request, request.app.state.max_upload_bytes)
    state = request.app.state
    prediction = await run_in_threadpool(partial(predict_image, state.studio, name, filename or "upload", data,
                                                 record=record, roi=roi, context=RecordContext(station=station),
                                                 actor=actor))
    result = prediction.as_dict()
    state.metrics.decisions.labels(name, result["decision"]).inc()
    return JSONResponse(result)
