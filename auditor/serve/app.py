"""The ASGI app of ``auditor serve``: one route per page, each with its ``/api/...`` twin.

Requests read through one read-only connection that a burst of requests shares and that is let
go half a second after the last one, at most two seconds after it opened, and when the file is
replaced (``auditor.serve.reader``): a writer in another process gets the store between bursts,
and a writer waiting with ``--wait`` gets it while the dashboard is being browsed.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditor.errors import AuditorError, InputError, StoreError, StoreLockedError
from auditor.paths import templates_dir
from auditor.report import charts
from auditor.serve import eventlog, overview, reports, rows, trends, version
from auditor.serve.reader import SharedReader
from auditor.serve.svg import without_inline_css
from auditor.serve.uploads import UploadProblem, uploaded_pdf
from auditor.serve.web import (
    Problem,
    check_params,
    problem,
    render,
    unexpected,
    wants_json,
    with_headers,
)
from auditor.store.periods import period_bounds

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class ServeSettings:
    db: Path
    trust: Path | None = None          # root certificate for the signer check of `verify`
    max_upload: int = 20 << 20         # bytes
    wait: float = 5.0                  # seconds a request waits for a writer to let go
    allowed_hosts: tuple[str, ...] = field(default=LOCAL_HOSTS)


class App:
    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.label = str(settings.db)
        self.reader = SharedReader(settings.db, wait=settings.wait)

    def read(self, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``work(store, ...)`` on the shared read-only connection (in a worker thread)."""
        with self.reader.borrow() as store:
            return work(store, *args, **kwargs)

    async def guarded(self, request: Request, page: Callable[[Request], Any]) -> Response:
        try:
            return await page(request)
        except Problem as exc:
            return problem(request, exc, self.label)
        except UploadProblem as exc:
            return problem(request, Problem(exc.status, str(exc)), self.label)
        except InputError as exc:
            return problem(request, Problem(400, str(exc)), self.label)
        except StoreLockedError as exc:
            return problem(request, Problem(503, f"{exc}. The dashboard waited "
                                                 f"{self.settings.wait:g} s; reload in a moment."),
                           self.label)
        except StoreError as exc:
            return problem(request, Problem(503, str(exc), "Store unavailable"), self.label)
        except AuditorError as exc:
            return problem(request, Problem(500, str(exc), "Error"), self.label)
        except Exception as exc:
            return unexpected(request, exc, self.label)

    def page(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return await self.guarded(request, handler)
        return endpoint

    # --- pages ---------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        p = check_params(request, ("model", "period", "verdict"))
        if p["period"]:
            period_bounds(p["period"])  # InputError -> 400
        if p["verdict"] and p["verdict"] not in overview.VERDICT_FILTERS:
            raise Problem(400, f"verdict must be one of {', '.join(overview.VERDICT_FILTERS)}")
        data = await run_in_threadpool(self.read, overview.overview, model=p["model"],
                                       period=p["period"], verdict=p["verdict"])
        if wants_json(request):
            return render(request, "overview.html.j2", data, store=self.label)
        return render(request, "overview.html.j2", data, store=self.label,
                      rows=rows.overview_rows(data["versions"]))

    async def version(self, request: Request) -> Response:
        check_params(request, ())
        model, name = request.path_params["model"], request.path_params["version"]

        def work(store):  # one connection for the whole page
            if not version.exists(store, model, name):
                raise Problem(404, f"no version {model}@{name} in the store")
            data, behaviours = version.version_page(store, model, name)
            data["reports"] = [{k: r[k] for k in ("report_id", "kind", "created_at", "signer",
                                                  "subject", "file")}
                               for r in reports.report_index(store)
                               if any(v["key"] == data["key"] for v in r["versions"])]
            return data, behaviours

        data, behaviours = await run_in_threadpool(self.read, work)
        if wants_json(request):
            return render(request, "version.html.j2", data, store=self.label)
        heatmap = without_inline_css(await run_in_threadpool(charts.heatmap, behaviours))
        return render(request, "version.html.j2", data, store=self.label, heatmap=heatmap,
                      effect_rows=rows.effect_rows(data["effects"]) if data["effects"] else "")

    async def trends(self, request: Request) -> Response:
        p = check_params(request, ("model", "behaviour"))
        data = await run_in_threadpool(self.read, trends.trends, model=p["model"],
                                       behaviour=p["behaviour"])
        if p["model"] and p["model"] not in data["models"]:
            raise Problem(404, f"no model {p['model']!r} in the store")
        if p["behaviour"] and p["behaviour"] not in data["behaviours"]:
            raise Problem(404, f"model {data['model']!r} has no scores of {p['behaviour']!r}")
        rows = data["versions"]
        chart = charts.trend(f"{data['behaviour']}: total effect and metric",
                             [r["key"] for r in rows],
                             {"total effect": [r["total"] for r in rows],
                              "metric value": [r["metric_value"] for r in rows]}) if rows else ""
        return render(request, "trends.html.j2", data, store=self.label,
                      chart=without_inline_css(chart))

    async def report_list(self, request: Request) -> Response:
        check_params(request, ())
        entries = await run_in_threadpool(self.read, reports.report_index)
        for entry in entries:
            entry["verification"] = await run_in_threadpool(self._verify, entry["path"], True)
        return render(request, "reports.html.j2", {"reports": entries}, store=self.label)

    def _entry(self, store, report_id: str) -> dict[str, Any]:
        found = [e for e in reports.report_index(store) if e["report_id"] == report_id]
        if not found:
            raise Problem(404, f"no report {report_id} in the store")
        return found[0]

    async def report(self, request: Request) -> Response:
        check_params(request, ())
        entry = await run_in_threadpool(self.read, self._entry, request.path_params["report_id"])
        entry["verification"] = await run_in_threadpool(self._verify, entry["path"], True)
        return render(request, "report.html.j2", entry, store=self.label)

    async def download(self, request: Request) -> Response:
        check_params(request, ())
        entry = await run_in_threadpool(self.read, self._entry, request.path_params["report_id"])
        data = reports.read_pdf(entry["path"])
        if data is None or entry["file"] != "ok":
            raise Problem(404, f"the file of report {entry['report_id']} is "
                               f"{'missing' if data is None else 'changed since it was stored'}")
        name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(entry["path"]).name) or "report.pdf"
        return with_headers(Response(data, media_type="application/pdf", headers={
            "content-disposition": f'attachment; filename="{name}"'}))

    def _verify(self, path: str | Path, against_store: bool) -> dict[str, Any]:
        return reports.verify(path, trust=self.settings.trust,
                              db=self.settings.db if against_store else None,
                              wait=self.settings.wait)

    async def verify_form(self, request: Request) -> Response:
        check_params(request, ())
        return render(request, "verify.html.j2", {"result": None, **self._limits()},
                      store=self.label)

    def _limits(self) -> dict[str, Any]:
        return {"max_upload_bytes": self.settings.max_upload,
                "trust": str(self.settings.trust) if self.settings.trust else None}

    async def verify_upload(self, request: Request) -> Response:
        p = check_params(request, ("store",))
        if p["store"] not in (None, "0", "1"):
            raise Problem(400, "store must be 0 or 1")
        name, data, fields = await uploaded_pdf(request, "report", self.settings.max_upload)
        multipart = request.headers.get("content-type", "").startswith("multipart/")
        against = fields.get("store") == "1" if multipart else p["store"] != "0"
        with tempfile.TemporaryDirectory(prefix="auditor-serve-") as folder:
            path = Path(folder) / "upload.pdf"
            path.write_bytes(data)
            result = await run_in_threadpool(self._verify, path, against)
        data = {"result": result | {"file": name, "bytes": len(data),
                                    "against_store": against}, **self._limits()}
        return render(request, "verify.html.j2", data, store=self.label)

    async def event_log(self, request: Request) -> Response:
        p = check_params(request, ("limit", "before"))
        limit = _whole(p["limit"], "limit", 100, 1, 1000)
        before = _whole(p["before"], "before", None, 1, None)
        data = await run_in_threadpool(self.read, eventlog.event_log, limit=limit, before=before)
        return render(request, "log.html.j2", data, store=self.label)

    async def stylesheet(self, request: Request) -> Response:
        css = (templates_dir() / "serve" / "serve.css").read_text(encoding="utf-8")
        return with_headers(Response(css, media_type="text/css"))


def _whole(text: str | None, name: str, default: int | None, low: int,
           high: int | None) -> int | None:
    if text is None:
        return default
    if not re.fullmatch(r"\d{1,12}", text) or int(text) < low or \
            (high is not None and int(text) > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise Problem(400, f"{name} must be a whole number {bounds}, not {text!r}")
    return int(text)


def create_app(settings: ServeSettings) -> Starlette:
    app = App(settings)
    pages = [("/", "overview", app.overview), ("/trends", "trends", app.trends),
             ("/reports", "reports", app.report_list), ("/log", "log", app.event_log),
             ("/versions/{model}/{version}", None, app.version),
             ("/reports/{report_id}", None, app.report)]
    routes = []
    for path, api_name, handler in pages:
        routes.append(Route(path, app.page(handler)))
        routes.append(Route(f"/api/{api_name}" if api_name else f"/api{path}", app.page(handler)))
    routes += [Route("/reports/{report_id}/pdf", app.page(app.download)),
               Route("/verify", app.page(app.verify_form)),
               Route("/verify", app.page(app.verify_upload), methods=["POST"]),
               Route("/api/verify", app.page(app.verify_upload), methods=["POST"]),
               Route("/static/serve.css", app.page(app.stylesheet))]

    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = {404: f"no page at {request.url.path}",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(
            exc.status_code, str(exc.detail))
        return problem(request, Problem(exc.status_code, message), app.label)

    async def server_error(request: Request, exc: Exception) -> Response:
        return unexpected(request, exc, app.label)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            app.reader.close()

    starlette = Starlette(routes=routes,
                          middleware=[Middleware(TrustedHostMiddleware,
                                                 allowed_hosts=list(settings.allowed_hosts))],
                          exception_handlers={HTTPException: http_error, Exception: server_error},
                          lifespan=lifespan)
    starlette.state.reader = app.reader
    return starlette
