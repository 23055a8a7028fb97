"""The simulator's house rules (issue 17 item 6): modules under 500 lines, functions under 40,
and the control routes and scenarios reach the exchange through the narrow control interface
(`sim/control_api.py`), never back into `SimServer`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bybit_hybrid.sim

SIM = Path(bybit_hybrid.sim.__file__).parent
MODULES = sorted(SIM.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_and_function_sizes(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) < 500, f"{path.name} has {len(text.splitlines())} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > 40
    ]
    assert not long, f"{path.name}: {', '.join(long)}"


@pytest.mark.parametrize("name", ["control.py", "scenarios.py", "control_api.py"])
def test_control_and_scenarios_never_reach_into_the_server(name: str) -> None:
    tree = ast.parse((SIM / name).read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert "bybit_hybrid.sim.server" not in imported
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert "SimServer" not in names
