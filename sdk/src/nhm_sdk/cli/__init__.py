"""``nhm``: the operator's command line, built on the SDK.

    nhm numbers import numbers.csv --campaign <id>     nhm health list --status FLAGGED
    nhm numbers show +14158675309                      nhm cases list --state OPEN
    nhm simulate                                       nhm report weekly
    nhm audit --resource numbers/+14158675309          nhm audit --service registry --actor tenant:ops

Where to connect: --target (one address for every service) or --registry-target …, else NHM_TARGET /
NHM_<SERVICE>_TARGET, else the `make run` ports on localhost. The key: --api-key, else NHM_API_KEY, else the
development key `make run` keeps in data/dev-credentials.json.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from nhm_sdk._client import Client
from nhm_sdk._config import SERVICES, ClientConfig, TlsConfig
from nhm_sdk._errors import NhmError
from nhm_sdk._version import __version__
from nhm_sdk.cli import _audit, _cases, _catalog, _health, _numbers, _simulate
from nhm_sdk.cli._context import Context


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nhm", description="Operate nhm: numbers, campaigns, keys, health, remediation cases, simulation.",
        epilog="Run `nhm <command> --help` for each command's options.")
    parser.add_argument("--version", action="version", version=f"nhm {__version__}")
    parser.add_argument("--target", help="address of every service (default: NHM_TARGET, else make run's ports)")
    for service in SERVICES:
        parser.add_argument(f"--{service}-target", dest=f"{service}_target", metavar="ADDR",
                            help=f"address of the {service} service")
    parser.add_argument("--api-key", help="API key (default: NHM_API_KEY, else data/dev-credentials.json)")
    parser.add_argument("--credentials", type=Path, default=None,
                        help="dev credentials file written by make run (default: data/dev-credentials.json)")
    parser.add_argument("--tenant", help="with an admin key: the tenant to act for")
    parser.add_argument("--tls", action="store_true", help="use TLS with the system's root certificates")
    parser.add_argument("--ca-file", help="PEM bundle to verify the servers with (implies --tls)")
    parser.add_argument("--cert-file", help="client certificate for mutual TLS (implies --tls)")
    parser.add_argument("--key-file", help="client certificate's key")
    parser.add_argument("--timeout", type=float, default=None, help="per-call deadline in seconds")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    _numbers.register(commands)
    _health.register(commands)
    _catalog.register(commands)
    _cases.register(commands)
    _audit.register(commands)
    _simulate.register(commands)
    return parser


def config_from_args(args: argparse.Namespace) -> ClientConfig:
    overrides: dict[str, object] = {}
    if args.target:
        overrides["target"] = args.target
    for service in SERVICES:
        value = getattr(args, f"{service}_target")
        if value:
            overrides[f"{service}_target"] = value
    if args.api_key:
        overrides["api_key"] = args.api_key
    if args.tenant:
        overrides["tenant_id"] = args.tenant
    if args.tls or args.ca_file or args.cert_file:
        overrides["tls"] = TlsConfig(ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file)
    config = ClientConfig.from_env(credentials_file=args.credentials)
    if args.target:
        # --target means every service there (unless a --<service>-target says otherwise).
        config = config.with_overrides(**{f"{s}_target": None for s in SERVICES})
    config = config.with_overrides(**overrides)
    if args.timeout is not None:
        timeouts = config.timeouts
        config = config.with_overrides(timeouts=type(timeouts)(
            allocation=args.timeout, registry=args.timeout, scoring=args.timeout, remediation=args.timeout))
    return config


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 the platform said no, 2 bad usage/input)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as exc:
        print(f"nhm: {exc}", file=err)
        return 2
    if not config.api_key:
        print("nhm: no API key: pass --api-key, set NHM_API_KEY, or start the platform with `make run`", file=err)
        return 2
    try:
        with Client(config) as client:
            context = Context(client=client, json=args.json, out=out, err=err)
            code: int = args.handler(context, args)
            return code
    except NhmError as exc:
        print(f"nhm: {exc}", file=err)
        for violation in exc.field_violations[:20]:
            print(f"  {violation.field}: {violation.description}", file=err)
        if exc.request_id:
            print(f"  (request id {exc.request_id})", file=err)
        return 1
    except (OSError, ValueError, TypeError) as exc:
        print(f"nhm: {exc}", file=err)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
