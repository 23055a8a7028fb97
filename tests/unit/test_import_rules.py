"""The sans-I/O core imports no I/O library and reads no clock; the simulator shares no decoder."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

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
