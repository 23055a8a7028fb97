"""The docs carry what they need: no pointer to a file outside the repository (the design and
exchange-reference notes of the workspace are not shipped), and every relative link resolves
to a file in the repository (issue 18)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.markdown import ROOT, documents, links

# Names of workspace files that are not in the repository, and how docs used to cite them.
_OUTSIDE = re.compile(r"shared/|\.\./shared|DESIGN\.md|DESIGN §|BYBIT_V5(?:_EXAMPLES)?\.md|/work/")


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reference_to_files_outside_the_repository(path: Path) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _OUTSIDE.search(line)
    ]
    assert not bad, "points outside the repository:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(path: Path) -> None:
    bad = []
    for number, target in links(path):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same page
        file = (path.parent / target.split("#", 1)[0]).resolve()
        if not file.is_relative_to(ROOT) or not file.exists():
            bad.append(f"{path.relative_to(ROOT)}:{number}: {target}")
    assert not bad, "links to missing files or outside the repository:\n" + "\n".join(bad)
