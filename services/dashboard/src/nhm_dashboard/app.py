"""The Flask application: composition root, security headers, error pages, one log line per request."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, render_template, request
from werkzeug.middleware.proxy_fix import ProxyFix

from nhm_dashboard import views
from nhm_dashboard.gateway import Gateway
from nhm_dashboard.sessions import SessionStore
from nhm_dashboard.settings import DashboardSettings
from nhm_platform.clock import Clock, SystemClock
from nhm_platform.logs import get_logger
from nhm_sdk import (
    DeadlineExceededError,
    NhmError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
)

_HERE = Path(__file__).parent
_log = get_logger("nhm.dashboard")

# Everything is served from this origin; charts are inline SVG; no inline script or style.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@dataclass(frozen=True)
class Dashboard:
    """What every request handler needs, kept on the app."""

    settings: DashboardSettings
    sessions: SessionStore
    gateway: Gateway
    clock: Clock

    def now(self) -> datetime:
        return self.clock.now()


def create_app(settings: DashboardSettings, *, clock: Clock | None = None, gateway: Gateway | None = None) -> Flask:
    app = Flask("nhm_dashboard", template_folder=str(_HERE / "templates"), static_folder=str(_HERE / "static"))
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, SEND_FILE_MAX_AGE_DEFAULT=3600)
    if settings.trust_proxy_headers:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    secret = settings.session_secret.encode() if settings.session_secret else secrets.token_bytes(32)
    clock = clock or SystemClock()
    store = SessionStore(secret, clock, lifetime=timedelta(seconds=settings.session_lifetime),
                         idle_timeout=timedelta(seconds=settings.session_idle_timeout),
                         max_sessions=settings.max_sessions)
    app.extensions["nhm_dashboard"] = Dashboard(settings, store, gateway or Gateway(settings), clock)
    views.register(app)
    _register_filters(app)
    _register_errors(app)

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on form posts.
        response.headers["Referrer-Policy"] = "same-origin"
        if request.is_secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"
        session = g.get("session")
        _log.info("http", method=request.method, path=request.path, status=response.status_code,
                  duration_ms=round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 3),
                  tenant=session.tenant_id if session is not None else "")
        return response

    return app


def dashboard(app: Flask) -> Dashboard:
    found: Dashboard = app.extensions["nhm_dashboard"]
    return found


def _register_filters(app: Flask) -> None:
    def pct(value: float | None, digits: int = 1) -> str:
        if value is None:
            return "—"
        return f"{value * 100:.{digits}f}%"

    def when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
        return value.strftime(fmt) if value is not None else "—"

    def signed(value: int) -> str:
        return f"+{value}" if value > 0 else ("±0" if value == 0 else str(value))

    app.jinja_env.filters.update(pct=pct, when=when, signed=signed)


def _error_page(status: int, title: str, message: str) -> tuple[str, int]:
    return render_template("error.html", title=title, message=message, status=status), status


def _register_errors(app: Flask) -> None:
    @app.errorhandler(NotFoundError)
    def _not_found(error: NotFoundError) -> Any:
        return _error_page(404, "Not found", "Your tenant has nothing by that name. " + _detail(error))

    @app.errorhandler(PermissionDeniedError)
    def _denied(error: PermissionDeniedError) -> Any:
        return _error_page(403, "Not allowed", "Your API key may not do this (a read-only key cannot act). "
                           + _detail(error))

    @app.errorhandler(UnauthenticatedError)
    def _unauthenticated(error: UnauthenticatedError) -> Any:
        return views.signed_out_by_services()

    @app.errorhandler(UnavailableError)
    @app.errorhandler(DeadlineExceededError)
    def _unavailable(error: NhmError) -> Any:
        return _error_page(503, "A service is not answering",
                           "The dashboard could not reach one of the nhm services. Try again in a moment. "
                           + _detail(error))

    @app.errorhandler(NhmError)
    def _other(error: NhmError) -> Any:
        return _error_page(502, "A service refused the request", _detail(error))

    @app.errorhandler(404)
    def _no_page(_: Exception) -> Any:
        return _error_page(404, "Not found", "There is no such page.")

    @app.errorhandler(400)
    def _bad_request(error: Exception) -> Any:
        return _error_page(400, "Bad request", getattr(error, "description", "") or "The request was not valid.")


def _detail(error: NhmError) -> str:
    text = error.message
    return text if text.endswith(".") else text + "."
