"""A size-limited multipart upload: the body is read with a cap before anything parses it."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request


class UploadProblem(Exception):
    """The upload cannot be used; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def capped_body(request: Request, limit: int, shown: int) -> bytes:
    """The request body, refused (413, naming the limit ``shown``) past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadProblem(413, _too_large(shown))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise UploadProblem(413, _too_large(shown))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> str:
    return f"the upload is larger than the limit of {limit / (1 << 20):g} MiB"


async def uploaded_pdf(request: Request, field: str, limit: int) -> tuple[str, bytes, dict]:
    """(file name, bytes, other form fields) of a multipart form with one file in ``field``;
    a raw ``application/pdf`` body is accepted too."""
    body = await capped_body(request, limit + (64 << 10), limit)  # room for multipart framing
    kind = request.headers.get("content-type", "")
    if kind.startswith("application/pdf"):
        data, name, fields = body, "upload.pdf", {}
    elif kind.startswith("multipart/form-data"):
        data, name, fields = await _parse(request, body, field)
    else:
        raise UploadProblem(400, "send the report as a multipart form (field "
                                 f"{field!r}) or as an application/pdf body")
    if len(data) > limit:
        raise UploadProblem(413, _too_large(limit))
    if not data:
        raise UploadProblem(400, "the upload is empty: choose a report PDF")
    if data.lstrip()[:5] != b"%PDF-":
        raise UploadProblem(400, f"{name} is not a PDF file (it does not begin with %PDF-)")
    return name, data, fields


async def _parse(request: Request, body: bytes, field: str) -> tuple[bytes, str, dict]:
    async def stream():
        yield body
        yield b""

    try:
        form = await MultiPartParser(request.headers, stream(), max_files=1,
                                     max_fields=10).parse()
    except MultiPartException as exc:
        raise UploadProblem(400, f"malformed upload: {exc.message}") from None
    upload = form.get(field)
    if not isinstance(upload, UploadFile):
        raise UploadProblem(400, f"no file in the form field {field!r}: choose a report PDF")
    data = await upload.read()
    await upload.close()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    name = (upload.filename or "upload.pdf")[:200]
    return data, name, fields
