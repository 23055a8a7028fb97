"""The sans-I/O core imports no I/O library and reads no clock; the simulator shares no decoder."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bybit_hybrid

SRC = Path(__file__).resolve().parents[2] / "src" / "bybit_hybrid"
IO_MODULES = {
    "asyncio",
    "aiohttp",
    "socket",
    "threading",
    "selectors",
    "ssl",
    "requests",
    "websockets",
    "websocket",
}
CLOCK_CALLS = {
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "time_ns"),
    ("time", "perf_counter"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _clock_reads(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in CLOCK_CALLS
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def _core_files() -> list[Path]:
    return sorted([*(SRC / "protocol").rglob("*.py"), *(SRC / "wire").rglob("*.py")])


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_core_imports_no_io(path: Path) -> None:
    bad = {name for name in _imports(path) if name.split(".")[0] in IO_MODULES}
    assert not bad, f"{path.name} imports I/O modules {sorted(bad)}"
    assert not _clock_reads(path), f"{path.name} reads the clock: {_clock_reads(path)}"


@pytest.mark.parametrize(
    "path", sorted((SRC / "sim").rglob("*.py")), ids=lambda p: str(p.relative_to(SRC))
)
def test_sim_does_not_share_the_client_decoding_path(path: Path) -> None:
    allowed = {"bybit_hybrid.wire.signing"}
    bad = {
        name
        for name in _imports(path)
        if name.startswith(("bybit_hybrid.wire", "bybit_hybrid.protocol", "bybit_hybrid.transport"))
        and name not in allowed
    }
    assert not bad, f"sim module {path.name} imports client decoding code {sorted(bad)}"


def test_importing_the_core_loads_no_io_library() -> None:
    """Measured, not read from source: a fresh interpreter imports the core and the wire layer
    and must not have loaded aiohttp, asyncio or the streams (the package face is lazy)."""
    code = (
        "import sys, bybit_hybrid.protocol.hybrid, bybit_hybrid.wire.convert, bybit_hybrid.domain\n"
        "bad = [m for m in ('aiohttp', 'asyncio', 'bybit_hybrid.stream',"
        " 'bybit_hybrid.transport.rest') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the core loaded {out.stdout.strip()}"


def test_the_package_face_still_offers_the_streams() -> None:
    assert bybit_hybrid.BybitHybridStream.__name__ == "BybitHybridStream"
    assert "AdaptiveBybitStream" in dir(bybit_hybrid)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = bybit_hybrid.Nope
