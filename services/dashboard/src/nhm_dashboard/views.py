"""Routes: each turns a request into calls on the page modules and renders a template. No rules live here."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, g, redirect, render_template, request, url_for

from nhm_dashboard import csrf, number_page, numbers, overview, remediation_page, weekly
from nhm_dashboard import vocabulary as words
from nhm_dashboard.gateway import TenantApi
from nhm_dashboard.sessions import Session
from nhm_sdk import (
    FailedPreconditionError,
    InvalidArgumentError,
    NhmError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
)

F = TypeVar("F", bound=Callable[..., Any])

COOKIE = "nhm_session"
# With TLS the cookie takes the __Host- prefix: the browser then insists on Secure, Path=/ and no Domain.
SECURE_COOKIE = "__Host-nhm_session"
_PHONE = re.compile(r"^\+[0-9]{8,15}$")
_ID = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
MAX_TEXT = 500


def _dash() -> Any:
    return current_app.extensions["nhm_dashboard"]


def _cookie_name() -> str:
    return SECURE_COOKIE if request.is_secure else COOKIE


def _api() -> TenantApi:
    api: TenantApi = g.api
    return api


def _session() -> Session:
    session: Session = g.session
    return session


def signed_in(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        session = _dash().sessions.get(request.cookies.get(_cookie_name()))
        if session is None:
            target = request.full_path if request.method == "GET" else "/"
            return redirect(url_for("login", next=target.rstrip("?")))
        g.session = session
        g.api = _dash().gateway.as_key(session.api_key)
        if request.method == "POST":
            _check_form(session.csrf_token)
        return view(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def _check_form(expected: str) -> None:
    if not csrf.same_origin(request.headers.get("Origin"), request.host_url):
        abort(400, "This form came from another site and was refused.")
    if not csrf.token_matches(expected, request.form.get(csrf.FIELD)):
        abort(400, "The form had expired or did not come from this page. Reload the page and try again.")


def _render(template: str, **context: Any) -> str:
    session = g.get("session")
    return render_template(template, session=session, flashes=session.take_flashes() if session else [],
                           words=words, **context)


def _text(name: str) -> str:
    return request.form.get(name, "").strip()[:MAX_TEXT]


def _local(target: str | None, fallback: str) -> str:
    """Only same-site paths are followed after login and actions (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return fallback
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else fallback


def signed_out_by_services() -> Response:
    """The services refused the session's key (revoked or expired since login): end the session."""
    _dash().sessions.end(request.cookies.get(_cookie_name()))
    response = redirect(url_for("login", reason="revoked"))
    response.delete_cookie(_cookie_name(), path="/")
    return response


def register(app: Flask) -> None:
    # --- sign in and out --------------------------------------------------------------------------------------

    @app.get("/login")
    def login() -> Any:
        return _login_page()

    @app.post("/login")
    def login_submit() -> Any:
        dash = _dash()
        nonce = request.cookies.get(csrf.LOGIN_NONCE_COOKIE, "")
        if not csrf.same_origin(request.headers.get("Origin"), request.host_url) or not nonce or \
                not csrf.token_matches(csrf.login_token(dash.sessions, nonce), request.form.get(csrf.FIELD)):
            return _login_page("The sign-in form had expired. Please try again.", 400)
        key = request.form.get("api_key", "").strip()
        if not key:
            return _login_page("Enter your API key.", 400)
        if len(key) > 512 or not key.isprintable():
            return _login_page("That API key was not accepted. Check it and try again.", 401)
        try:
            tenant = dash.gateway.as_key(key).tenant()
        except UnauthenticatedError:
            return _login_page("That API key was not accepted. Check it and try again.", 401)
        except (PermissionDeniedError, InvalidArgumentError, NotFoundError, FailedPreconditionError):
            return _login_page("That key does not belong to one tenant. Sign in with your tenant's API key.", 403)
        except UnavailableError:
            return _login_page("The registry service is not answering, so the key could not be checked. "
                               "Try again in a moment.", 503)
        cookie, _ = dash.sessions.create(key, tenant.id, tenant.display_name or tenant.id)
        response = redirect(_local(request.args.get("next"), url_for("home")))
        response.set_cookie(_cookie_name(), cookie, max_age=int(dash.settings.session_lifetime), path="/",
                            secure=request.is_secure, httponly=True, samesite="Strict")
        response.delete_cookie(csrf.LOGIN_NONCE_COOKIE, path="/login")
        return response

    @app.post("/logout")
    @signed_in
    def logout() -> Any:
        _dash().sessions.end(request.cookies.get(_cookie_name()))
        response = redirect(url_for("login", reason="signed-out"))
        response.delete_cookie(_cookie_name(), path="/")
        return response

    # --- pages ------------------------------------------------------------------------------------------------

    @app.get("/")
    @signed_in
    def home() -> Any:
        return _render("overview.html", page="overview",
                       view=overview.load(_api(), _dash().settings.overview_list_limit))

    @app.get("/numbers")
    @signed_in
    def numbers_list() -> Any:
        query = numbers.NumberQuery.from_args(request.args)
        page = numbers.load_page(_api(), query, _dash().settings.page_size)
        return _render("numbers.html", page="numbers", view=page, query=query)

    @app.get("/numbers/<phone>")
    @signed_in
    def number_detail(phone: str) -> Any:
        if not _PHONE.match(phone):
            abort(404)
        settings = _dash().settings
        view = number_page.load(_api(), phone, _dash().now(), history_limit=settings.history_limit,
                                activity_days=settings.activity_days)
        return _render("number.html", page="numbers", view=view, outcomes=words.TASK_OUTCOMES)

    @app.post("/numbers/<phone>/quarantine")
    @signed_in
    def quarantine(phone: str) -> Any:
        if not _PHONE.match(phone):
            abort(404)
        reason = _text("reason") or "quarantined from the dashboard"
        return _act(phone, lambda: _api().quarantine(phone, f"{reason} (dashboard, {_session().tenant_id})"),
                    f"{phone} is quarantined: it is out of every campaign's rotation now.")

    @app.post("/numbers/<phone>/cases")
    @signed_in
    def open_case(phone: str) -> Any:
        if not _PHONE.match(phone):
            abort(404)
        reason = _text("reason") or "opened from the dashboard"

        def run() -> str:
            response = _api().open_case(phone, reason)
            return "opened" if response.created else "joined"

        return _act(phone, run, lambda result: (
            f"A remediation case was opened for {phone}." if result == "opened"
            else f"{phone} already had an open case; your reason was added to it."))

    @app.post("/cases/<case_id>/tasks/<task_id>/done")
    @signed_in
    def task_done(case_id: str, task_id: str) -> Any:
        if not _ID.match(case_id) or not _ID.match(task_id):
            abort(404)
        phone = _text("phone")
        back = url_for("number_detail", phone=phone) if _PHONE.match(phone) else url_for("remediation")
        reference = _text("reference")
        outcome_key = _text("outcome")
        if outcome_key and outcome_key not in words.TASK_OUTCOMES:
            _session().flash("error", "Choose an outcome from the list.")
            return redirect(back)
        if _text("needs_reference") == "1" and not reference:
            _session().flash("error", "Enter the programme's or engine's reference (ticket number) to mark "
                                      "this task done.")
            return redirect(back)
        outcome = words.TASK_OUTCOMES.get(outcome_key)
        try:
            _api().complete_task(case_id, task_id, reference, outcome, _text("notes") or None)
        except (InvalidArgumentError, FailedPreconditionError, NotFoundError) as error:
            _session().flash("error", f"The task was not updated: {error.message}")
            return redirect(back)
        _session().flash("ok", "Task marked done" + (f" with reference {reference}." if reference else "."))
        return redirect(back)

    @app.get("/remediation")
    @signed_in
    def remediation() -> Any:
        view = remediation_page.load(_api(), _dash().settings.remediation_case_limit)
        return _render("remediation.html", page="remediation", view=view)

    @app.get("/cases/<case_id>/evidence.<fmt>")
    @signed_in
    def evidence(case_id: str, fmt: str) -> Any:
        if not _ID.match(case_id) or fmt not in ("csv", "json"):
            abort(404)
        packet = _api().evidence(case_id, fmt.upper())
        filename = re.sub(r"[^A-Za-z0-9_.\-]", "_", packet.filename or f"evidence-{case_id}.{fmt}")
        content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
        return Response(packet.content, content_type=content_type,
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    @app.get("/weekly")
    @signed_in
    def weekly_report() -> Any:
        view = weekly.view(_api().weekly_report(), _session().tenant_name)
        return _render("weekly.html", page="weekly", view=view)

    @app.get("/weekly.csv")
    @signed_in
    def weekly_csv() -> Any:
        view = weekly.view(_api().weekly_report(), _session().tenant_name)
        day = view.end.strftime("%Y-%m-%d") if view.end else "report"
        return Response(weekly.to_csv(view), content_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="nhm-weekly-{day}.csv"'})

    @app.get("/healthz")
    def healthz() -> Any:
        return Response("ok\n", content_type="text/plain")


_LOGIN_REASONS = {
    "signed-out": ("ok", "You are signed out."),
    "revoked": ("error", "Your API key is no longer accepted (revoked or expired). Sign in again."),
}


def _login_page(error: str = "", status: int = 200) -> Any:
    dash = _dash()
    nonce = request.cookies.get(csrf.LOGIN_NONCE_COOKIE) or csrf.new_login_nonce()
    notice = _LOGIN_REASONS.get(request.args.get("reason", ""))
    html = render_template("login.html", error=error, notice=notice, words=words, session=None, flashes=[],
                           token=csrf.login_token(dash.sessions, nonce), next=request.args.get("next", ""),
                           page="login")
    response = Response(html, status=status)
    response.set_cookie(csrf.LOGIN_NONCE_COOKIE, nonce, max_age=3600, path="/login", secure=request.is_secure,
                        httponly=True, samesite="Strict")
    return response


def _act(phone: str, action: Callable[[], Any], message: str | Callable[[Any], str]) -> Any:
    """Run an operator action, then show the number again with what happened."""
    try:
        result = action()
    except (InvalidArgumentError, FailedPreconditionError) as error:
        _session().flash("error", f"Not done: {error.message}")
    except NhmError as error:
        if isinstance(error, UnauthenticatedError | UnavailableError | PermissionDeniedError | NotFoundError):
            raise
        _session().flash("error", f"Not done: {error.message}")
    else:
        _session().flash("ok", message(result) if callable(message) else message)
    return redirect(url_for("number_detail", phone=phone))
