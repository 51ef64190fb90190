"""The dashboard's web layer: Starlette routes that render the query layer's values with Jinja2.

Read-only by construction: every route is a GET (anything else is 405), no route takes a file path, and
nothing here opens the database for writing. Every template is autoescaped (run, step and artifact names
come from users' files), pages carry a Content-Security-Policy that allows only our own script and
stylesheet, and on a loopback address only loopback Host headers are answered (no DNS rebinding).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stratus.config import Platform
from stratus.state import Database
from stratus.ui.queries.cost import DIMENSIONS, budget_views, spend_over_time
from stratus.ui.queries.graph import read_graph
from stratus.ui.queries.logs import read_log
from stratus.ui.queries.models import registry_view
from stratus.ui.queries.runs import (
    list_runs,
    run_summary,
    step_attempts,
    step_views,
    transfer_views,
)
from stratus.ui.queries.serving import RateTracker, deployment_views, serving_endpoints
from stratus.ui.queries.sites import site_views
from stratus.ui.views.charts import planned_vs_actual, stacked_spend
from stratus.ui.views.colours import STATUS_COLOURS, SitePalette, status_colour
from stratus.ui.views.dag import build_dag
from stratus.ui.views.format import duration, human_bytes, timestamp, usd
from stratus.workspace import Workspace

__all__ = ["LOOPBACK_HOSTS", "Dashboard", "create_app"]

#: Host headers answered when the dashboard listens on a loopback address.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
#: Runs shown on the cost page's planned-against-actual chart (the most recent).
COST_CHART_RUNS = 20
#: How often the run and log pages poll while a run goes on (milliseconds; read by app.js).
POLL_MS = 2000

_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


@dataclass
class Dashboard:
    """What every page reads: the platform, its state database, and the serving rate tracker."""

    workspace: Workspace
    db: Database
    palette: SitePalette
    tracker: RateTracker = field(default_factory=RateTracker)
    probe_sites: bool = True

    @classmethod
    def open(cls, workspace: Workspace) -> Dashboard:
        """Load the platform file and open its state database (ConfigError naming the file if it is bad)."""
        platform = workspace.platform
        return cls(workspace, workspace.database, SitePalette(list(platform.sites)))

    @property
    def platform_file(self) -> Path:
        """The platform file the dashboard shows."""
        return self.workspace.platform_file

    @property
    def platform(self) -> Platform:
        """The parsed platform (loaded once, when the dashboard opened)."""
        return self.workspace.platform


class _SecurityHeaders:
    """Adds the CSP and friends to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(dashboard: Dashboard, *, allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS) -> Starlette:
    """The ASGI app; ``allowed_hosts`` are the Host headers it answers (``("*",)`` for any)."""
    templates = _environment()
    templates.globals.update(
        platform_file=str(dashboard.platform_file), status_colours=STATUS_COLOURS, poll_ms=POLL_MS
    )

    def page(name: str, context: Mapping[str, Any], status: int = 200) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(**context), status_code=status)

    def runs_page(request: Request) -> Response:
        return page("runs.html", {"nav": "runs", "runs": list_runs(dashboard.db)})

    def run_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        summary = _require_run(dashboard, run_id)
        graph = read_graph(summary.pipeline_file)
        steps = step_views(dashboard.db, run_id, graph.nodes)
        transfers = transfer_views(dashboard.db, run_id)
        dag = build_dag(graph, steps, transfers, dashboard.palette)
        return page(
            "run.html",
            {"nav": "runs", "run": summary, "steps": steps, "transfers": transfers, "dag": dag},
        )

    def run_json(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        summary = _require_run(dashboard, run_id)
        graph = read_graph(summary.pipeline_file)
        steps = step_views(dashboard.db, run_id, graph.nodes)
        return JSONResponse(
            {
                "run": summary.to_json(),
                "finished": summary.status != "running",
                "transfers": len(transfer_views(dashboard.db, run_id)),
                "steps": [
                    {
                        **s.to_json(),
                        "fill": dashboard.palette.fill(s.site or s.planned_site),
                        "stroke": status_colour(s.status),
                        "duration": duration(s.duration_s),
                    }
                    for s in steps
                ],
            }
        )

    def step_page(request: Request) -> Response:
        run_id, step = request.path_params["run_id"], request.path_params["step"]
        summary = _require_run(dashboard, run_id)
        attempts = step_attempts(dashboard.db, run_id, step)
        if not attempts:
            raise HTTPException(404, f"run {run_id} has no attempt of a step named {step!r}")
        view = next((s for s in step_views(dashboard.db, run_id) if s.name == step), None)
        moved = [t for t in transfer_views(dashboard.db, run_id) if t.step == step]
        return page(
            "step.html",
            {"nav": "runs", "run": summary, "step": view, "attempts": attempts, "transfers": moved},
        )

    def logs_page(request: Request) -> Response:
        run_id, step, number = _log_params(request)
        summary = _require_run(dashboard, run_id)
        attempt = _require_attempt(dashboard, run_id, step, number)
        log = read_log(attempt.log_path)
        return page(
            "logs.html",
            {"nav": "runs", "run": summary, "step": step, "attempt": attempt, "log": log},
        )

    def logs_json(request: Request) -> Response:
        run_id, step, number = _log_params(request)
        attempt = _require_attempt(dashboard, run_id, step, number)
        log = read_log(attempt.log_path)
        return JSONResponse(
            {
                "status": attempt.status,
                "finished": attempt.status != "running",
                "text": log.text,
                "truncated": log.truncated,
                "size_bytes": log.size_bytes,
                "problem": log.problem,
            }
        )

    def sites_page(request: Request) -> Response:
        deployments = deployment_views(dashboard.workspace, None)  # endpoints only: no scrape
        sites = site_views(
            dashboard.workspace,
            serving_endpoints(deployments),
            probe=dashboard.probe_sites,
        )
        return page("sites.html", {"nav": "sites", "sites": sites, "palette": dashboard.palette})

    def cost_page(request: Request) -> Response:
        charts = []
        for by in DIMENSIONS:
            series = spend_over_time(dashboard.db, by)
            palette = dashboard.palette if by == "site" else SitePalette(list(series.groups))
            charts.append((by, series, stacked_spend(series, palette)))
        runs = list_runs(dashboard.db)[:COST_CHART_RUNS]
        per_run = planned_vs_actual([(r.id, r.planned_usd, r.actual_usd) for r in reversed(runs)])
        return page(
            "cost.html",
            {
                "nav": "cost",
                "charts": charts,
                "per_run": per_run,
                "runs": runs,
                "budgets": budget_views(dashboard.platform, dashboard.db),
            },
        )

    def serving_page(request: Request) -> Response:
        deployments = deployment_views(dashboard.workspace, dashboard.tracker)
        return page("serving.html", {"nav": "serving", "deployments": deployments})

    def models_page(request: Request) -> Response:
        return page(
            "models.html",
            {"nav": "models", "registry": registry_view(dashboard.workspace)},
        )

    def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=307)

    async def not_found(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": detail}, status_code=code)
        return page("error.html", {"nav": "", "code": code, "detail": detail}, status=code)

    static = StaticFiles(directory=str(files("stratus.ui") / "static"))
    routes = [
        Route("/", home),
        Route("/runs", runs_page, name="runs"),
        Route("/runs/{run_id}", run_page, name="run"),
        Route("/runs/{run_id}/steps/{step}", step_page, name="step"),
        Route("/runs/{run_id}/steps/{step}/attempts/{attempt:int}/log", logs_page, name="log"),
        Route("/api/runs/{run_id}", run_json),
        Route("/api/runs/{run_id}/steps/{step}/attempts/{attempt:int}/log", logs_json),
        Route("/sites", sites_page, name="sites"),
        Route("/cost", cost_page, name="cost"),
        Route("/serving", serving_page, name="serving"),
        Route("/models", models_page, name="models"),
        Mount("/static", static, name="static"),
    ]
    middleware = [
        Middleware(_SecurityHeaders),
        Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
    ]
    return Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: not_found})


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(files("stratus.ui") / "templates")),
        autoescape=select_autoescape(
            enabled_extensions=("html", "svg"), default_for_string=True, default=True
        ),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        usd=usd, bytes=human_bytes, duration=duration, when=timestamp, status_colour=status_colour
    )
    return env


def _require_run(dashboard: Dashboard, run_id: str) -> Any:
    summary = run_summary(dashboard.db, run_id)
    if summary is None:
        raise HTTPException(404, f"no run {run_id!r} in the state database")
    return summary


def _log_params(request: Request) -> tuple[str, str, int]:
    params = request.path_params
    return str(params["run_id"]), str(params["step"]), int(params["attempt"])


def _require_attempt(dashboard: Dashboard, run_id: str, step: str, number: int) -> Any:
    for attempt in step_attempts(dashboard.db, run_id, step):
        if attempt.attempt == number:
            return attempt
    raise HTTPException(404, f"run {run_id} has no attempt {number} of step {step!r}")
