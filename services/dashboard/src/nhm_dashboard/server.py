"""Serve the dashboard: a threaded WSGI server (werkzeug), TLS when given certificate files, clean stop on
SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import ssl
import threading
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from nhm_dashboard.settings import DashboardSettings
from nhm_platform.logs import get_logger

_log = get_logger("nhm.dashboard")


def build_server(app: Flask, settings: DashboardSettings) -> BaseWSGIServer:
    context: ssl.SSLContext | None = None
    if settings.tls_cert_file:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file or None)
    return make_server(settings.host, settings.port, app, threaded=True, ssl_context=context)


def serve(app: Flask, settings: DashboardSettings) -> None:
    server = build_server(app, settings)
    scheme = "https" if settings.tls_cert_file else "http"
    stop = threading.Event()

    def on_signal(*_: Any) -> None:
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    _log.info("dashboard serving", url=f"{scheme}://{settings.host}:{server.server_port}/",
              registry=settings.registry_target, scoring=settings.scoring_target,
              allocation=settings.allocation_target, remediation=settings.remediation_target)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        _log.info("dashboard stopped")
