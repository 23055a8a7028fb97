"""The user-facing Markdown (README.md, SECURITY.md, docs/*.md) split into what tests check:
fenced blocks with their file, line and an optional `<!-- doctest: ... -->` directive, and links.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)\s*$")
_DIRECTIVE = re.compile(r"<!--\s*doctest:\s*(.*?)\s*-->")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def documents() -> list[Path]:
    """Every Markdown file a user reads."""
    return [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    """One fenced block: `line` is the 1-based line of its opening fence."""

    path: Path
    line: int
    lang: str
    text: str
    directive: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} ({self.lang or 'text'} block)"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of one file; a `<!-- doctest: ... -->` comment on one of the three
    lines above a block is its directive."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence, lang = opening.groups()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        directive = None
        for above in lines[max(0, i - 3) : i]:
            match = _DIRECTIVE.search(above)
            if match:
                directive = match.group(1)
        found.append(Block(path, i + 1, lang, "\n".join(body) + "\n", directive))
        i = j + 1
    return found


def all_blocks() -> list[Block]:
    return [block for path in documents() for block in blocks(path)]


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every Markdown link outside fenced blocks."""
    found: list[tuple[int, str]] = []
    in_fence = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            found.extend((number, target) for target in _LINK.findall(line))
    return found
