"""Rendering and errors shared by every page: HTML (Jinja2) or its JSON twin, problem pages
that never show a stack trace, and the headers every answer carries."""

from __future__ import annotations

import logging
import math
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from auditor.paths import templates_dir
from auditor.serve.links import key_url, version_url

log = logging.getLogger(__name__)
FORMATS = ("html", "json")
_HEADERS = {
    # no script may run at all: the pages need none, and stored text can never become one
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class Problem(Exception):
    """An answer other than the page: 400 malformed query, 404 unknown id, 413, 503 busy."""

    def __init__(self, status: int, message: str, title: str | None = None):
        super().__init__(message)
        self.status, self.message = status, message
        self.title = title or {400: "Bad request", 404: "Not found", 405: "Method not allowed",
                               413: "Upload too large", 503: "Store busy"}.get(status, "Error")


def jsonable(value: Any) -> Any:
    """Plain JSON: datetimes as ISO text, NaN and ±Inf as null, paths as text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def when(value: Any) -> str:
    if isinstance(value, str):
        value = value.replace("T", " ")[:16]
        return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return "-" if value is None else str(value)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(templates_dir() / "serve"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=num, when=when, q=lambda text: quote(str(text), safe=""),
                       short=lambda text: (text or "-")[:12])
    env.globals.update(version_url=version_url, key_url=key_url)
    return env


ENV = _environment()


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.query_params.get("format") == "json"


def check_params(request: Request, allowed: tuple[str, ...]) -> dict[str, str | None]:
    """The page's query parameters (empty means absent); anything else is a 400."""
    params = request.query_params
    unknown = sorted(set(params) - {*allowed, "format"})
    if unknown:
        raise Problem(400, f"unknown query parameter {unknown[0]!r}; this page takes "
                           f"{', '.join(allowed) or 'none'} (and format=json)")
    for name in params:
        if len(params.getlist(name)) > 1:
            raise Problem(400, f"query parameter {name!r} is given more than once")
    if params.get("format", "html") not in FORMATS:
        raise Problem(400, f"format must be html or json, not {params['format']!r}")
    return {name: (params.get(name) or None) for name in allowed}


def render(request: Request, template: str, data: dict[str, Any], *, status: int = 200,
           store: str = "", **extra: Any) -> Response:
    if wants_json(request):
        return JSONResponse(jsonable(data), status_code=status, headers=_HEADERS)
    json_url = None
    if request.method == "GET":
        twin = request.url.include_query_params(format="json")
        json_url = f"{twin.path}?{twin.query}"
    html = ENV.get_template(template).render(data=data, store=store, json_url=json_url,
                                             path=request.url.path, **extra)
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def problem(request: Request, exc: Problem, store: str = "") -> Response:
    data = {"error": {"status": exc.status, "title": exc.title, "message": exc.message}}
    return render(request, "error.html.j2", data, status=exc.status, store=store)


def unexpected(request: Request, exc: BaseException, store: str = "") -> Response:
    log.error("auditor serve: %s %s failed", request.method, request.url.path, exc_info=exc)
    return problem(request, Problem(500, "the dashboard could not build this page; the server "
                                         "log has the details", "Internal error"), store)


def with_headers(response: Response) -> Response:
    response.headers.update(_HEADERS)
    return response
