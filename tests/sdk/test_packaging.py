"""The SDK as a distribution: it builds into a wheel with the generated code, type information and the `nhm`
script, imports with only its declared dependencies, and passes mypy --strict."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "sdk"


def test_the_wheel_holds_the_sdk_the_generated_code_and_the_cli(tmp_path: Path) -> None:
    source = tmp_path / "sdk"
    shutil.copytree(SDK, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    str(source), "-w", str(tmp_path / "dist")], check=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("nhm_sdk-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("nhm_sdk/__init__.py", "nhm_sdk/py.typed", "nhm_sdk/_client.py", "nhm_sdk/cli/__init__.py",
                     "nhm/py.typed", "nhm/registry/v1/registry_pb2.py", "nhm/registry/v1/registry_pb2.pyi",
                     "nhm/allocation/v1/allocation_pb2_grpc.py", "nhm/type/v1/types_pb2.py"):
        assert expected in names, expected
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    requires = sorted(line.split(":", 1)[1].strip().split(">")[0].split("<")[0]
                      for line in metadata.splitlines() if line.startswith("Requires-Dist:"))
    assert requires == ["grpcio", "grpcio-status", "protobuf"]
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "nhm = nhm_sdk.cli:main" in entry_points

    # Unpacked alone, it imports with nothing but the standard library and its three dependencies.
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import grpc, grpc_status, google.protobuf;"  # the declared dependencies (and what they import)
        "before = {m.split('.')[0] for m in sys.modules};"
        "import nhm_sdk, nhm_sdk.cli, nhm_sdk.cli._simulate;"
        "assert nhm_sdk.__file__.startswith(sys.argv[1]), nhm_sdk.__file__;"
        "new = {m.split('.')[0] for m in sys.modules} - before;"
        "print(sorted(t for t in new if t not in sys.stdlib_module_names))"
    )
    result = subprocess.run([sys.executable, "-I", "-c", probe, str(unpacked)], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout.strip() == "['nhm', 'nhm_sdk']"


def test_the_handwritten_sdk_passes_mypy_strict() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "sdk/src/nhm_sdk"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr + (
        "\n(mypy needs the grpc stubs: pip install types-grpcio)")
