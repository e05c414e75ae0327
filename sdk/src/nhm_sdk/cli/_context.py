"""What every command gets: the client and the output mode."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from nhm_sdk._client import Client


@dataclass
class Context:
    client: Client
    json: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def warn(self, text: str) -> None:
        self.err.write(text + "\n")


Handler = Callable[[Context, argparse.Namespace], int]
Subparsers = Any  # argparse's _SubParsersAction, which typeshed keeps private


def command(parent: Subparsers, name: str, handler: Handler, help: str, **kwargs: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help, **kwargs)
    parser.set_defaults(handler=handler)
    return parser


def group(parent: Subparsers, name: str, help: str) -> Subparsers:
    parser: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
    children = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
    children.required = True
    return children
