"""docs/architecture.md stays true to the code: every path it names exists, and its import
rules are the import-linter contracts of pyproject.toml, layer for layer."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "bybit_hybrid"
DOC = ROOT / "docs" / "architecture.md"
# A backticked path: `src/bybit_hybrid/x.py`, `protocol/session.py`, `rollout/`, `tests/...`.
_PATH = re.compile(r"`((?:[a-z_]+/)+(?:[a-z_]+\.py)?|[a-z_]+\.py)`")


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _exists(name: str) -> bool:
    candidates = [ROOT / name, PACKAGE / name]
    return any(path.exists() for path in candidates)


def test_every_module_path_the_page_names_exists() -> None:
    names = set(_PATH.findall(DOC.read_text()))
    assert len(names) > 40  # the page names its modules; an empty match would prove nothing
    missing = sorted(name for name in names if not _exists(name))
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_the_layer_rule_lists_the_contract_layers_in_order() -> None:
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    expected = [
        " | ".join(part.strip().removeprefix("bybit_hybrid.") for part in str(row).split("|"))
        for row in layers["layers"]  # type: ignore[attr-defined]
    ]
    text = " ".join(DOC.read_text().split())
    found = re.search(r"\*\*Layers\*\*: (.+?)\. A module", text)
    assert found is not None
    assert found.group(1).split(" > ") == expected


def test_each_contract_is_one_numbered_rule() -> None:
    text = DOC.read_text()
    section = text[text.index("## Import rules") : text.index("## Where each Bybit quirk")]
    rules = re.findall(r"^\d+\. ", section, flags=re.MULTILINE)
    assert len(rules) == len(_contracts())
