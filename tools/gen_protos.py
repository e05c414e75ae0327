"""Generate the Python code for protos/ into the SDK's generated-only package root.

Usage: python tools/gen_protos.py [--out DIR]   (default: sdk/src)

The generated tree (`nhm/...`: *_pb2.py, *_pb2_grpc.py, *.pyi) is committed and never edited by hand;
`make gen-check` regenerates into a temporary folder and fails when the committed copy differs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GENERATED_ROOT = "nhm"


def generate(out: Path) -> None:
    target = out / GENERATED_ROOT
    if target.exists():
        shutil.rmtree(target)
    out.mkdir(parents=True, exist_ok=True)
    proto_files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = str(resources.files("grpc_tools") / "_proto")
    bindir = Path(sys.executable).parent
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *proto_files,
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    for folder in [target, *(p for p in target.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").write_text('"""Generated from protos/. Do not edit."""\n')
    (target / "py.typed").write_text("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "sdk" / "src")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
