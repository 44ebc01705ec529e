"""The image of an inspection request: raw bytes with an image content type, or a multipart ``file``;
its size capped by Content-Length first and by counting while reading (a client may send no length)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

RAW_TYPES = ("image/png", "image/jpeg", "image/jpg", "image/bmp", "image/x-ms-bmp", "image/tiff",
             "application/octet-stream")
MULTIPART = "multipart/form-data"
ACCEPTED = f"{', '.join(RAW_TYPES)} or {MULTIPART} with a 'file' field"


class UploadError(Exception):
    """A request whose image cannot be taken: ``status`` is the HTTP status, ``str()`` the message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _too_large(limit: int) -> UploadError:
    return UploadError(413, f"upload too large: at most {limit / 2**20:g} MB (STUDIO_API_MAX_UPLOAD_MB)")


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise UploadError(400, "invalid Content-Length header")
        if int(declared) > limit:
            raise _too_large(limit)  # refused before a byte of the body is read
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _multipart_file(request: Request, body: bytes) -> tuple[str | None, bytes]:
    parser = MultiPartParser(request.headers, _once(body), max_files=1, max_fields=10, max_part_size=1024)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise UploadError(422, f"malformed multipart body: {error.message}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise UploadError(422, "the multipart body needs a 'file' field holding the image")
        return upload.filename, await upload.read()
    finally:
        await form.close()


async def read_image_upload(request: Request, limit: int) -> tuple[str | None, bytes]:
    """The uploaded file's name (multipart only) and bytes; UploadError (413, 415, 422) when unusable."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != MULTIPART and media_type not in RAW_TYPES:
        raise UploadError(415, f"unsupported content type {media_type or '(none)'}: send {ACCEPTED}")
    body = await _read_capped(request, limit)
    if media_type == MULTIPART:
        return await _multipart_file(request, body)
    return None, body
