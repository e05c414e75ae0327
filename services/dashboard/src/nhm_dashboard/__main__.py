"""Run the dashboard: ``python -m nhm_dashboard`` or ``nhm-dashboard`` (settings from NHM_DASHBOARD_*)."""

from __future__ import annotations

import argparse
import sys

from nhm_dashboard.app import create_app
from nhm_dashboard.server import serve
from nhm_dashboard.settings import load
from nhm_platform.logs import configure_logging
from nhm_platform.settings import SettingsError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nhm-dashboard", description="nhm's number health dashboard (HTTP).")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"])
    parser.parse_args(argv)
    try:
        settings = load()
    except SettingsError as exc:
        print(f"nhm-dashboard: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_format, settings.log_level)
    app = create_app(settings)
    serve(app, settings)


if __name__ == "__main__":
    main()
