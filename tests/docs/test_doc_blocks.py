"""Every command and code block of README.md, SECURITY.md and docs/*.md runs against the
simulator, extracted from the Markdown (issue 18 item 7). How commands are mapped onto this
machine is in `tests/docs/runner.py`.

Per block, by its fence's language:

    sh, console   run (console: `$ ` lines are commands, the lines below their output)
    python        run as a script against the simulator
    json          every line (or the whole block) is JSON
    toml          a settings file `load_settings` accepts
    text          not run: diagrams, layouts, sample output; a text block that looks like a
                  command fails (tag it `sh`, or skip it with a reason)

A `<!-- doctest: ... -->` comment on the lines above a block changes that:
`skip REASON` (a reason is required; keep them few), `drive NAME` (python: also start an
instance of the class NAME with the simulator's keys, wait for positions, stop it) and
`fixture NAME` (something the block needs prepared first, see FIXTURES). A block without a
language fails: say what it is. The blocks of one file share one simulator, one working
directory and the environment their `export`s set, in file order.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bybit_hybrid.service.settings import load_settings
from bybit_hybrid.sim import SimConfig, SimServer
from tests.docs.markdown import ROOT, Block, blocks, documents
from tests.docs.recording import incident_recording
from tests.docs.runner import DocContext, DocError, run_python_block, run_shell_block

_RUN = {"sh", "shell", "bash", "console"}
_LOOKS_LIKE_A_COMMAND = re.compile(
    r"^\s*(\$ |bybit-hybrid\b|\.venv/bin/|python3? |curl |export |pip )", re.M
)

Fixture = Callable[[SimServer, DocContext], Awaitable[None]]
FIXTURES: dict[str, Fixture] = {"incident-1234": incident_recording}


def _directive(block: Block) -> tuple[str, str]:
    if block.directive is None:
        return "", ""
    verb, _, rest = block.directive.partition(" ")
    if verb not in ("skip", "drive", "fixture") or not rest.strip():
        raise DocError(f"{block.where}: bad directive {block.directive!r}")
    return verb, rest.strip()


async def _check_block(block: Block, sim: SimServer, ctx: DocContext) -> str | None:
    """Runs or checks one block; the reason when it is skipped."""
    verb, arg = _directive(block)
    if verb == "skip":
        return arg
    if verb == "fixture":
        if arg not in FIXTURES:
            raise DocError(f"{block.where}: unknown fixture {arg!r}")
        await FIXTURES[arg](sim, ctx)
    if not block.lang:
        raise DocError(f"{block.where}: a block without a language (sh, python, text, ...)")
    if block.lang in _RUN:
        await run_shell_block(block, ctx)
    elif block.lang == "python":
        await run_python_block(block, ctx, arg if verb == "drive" else None)
    elif block.lang == "json":
        _check_json(block)
    elif block.lang == "toml":
        _check_toml(block, ctx)
    elif block.lang == "text":
        if _LOOKS_LIKE_A_COMMAND.search(block.text):
            raise DocError(f"{block.where}: looks like a command; tag it sh (or skip it)")
    else:
        raise DocError(f"{block.where}: no rule for {block.lang!r} blocks")
    return None


def _check_json(block: Block) -> None:
    try:
        json.loads(block.text)
        return
    except ValueError:
        pass
    for number, line in enumerate(block.text.splitlines(), block.line + 1):
        if line.strip():
            try:
                json.loads(line)
            except ValueError as exc:
                raise DocError(f"{block.where}: line {number} is not JSON: {exc}") from None


def _check_toml(block: Block, ctx: DocContext) -> None:
    try:
        tomllib.loads(block.text)
    except tomllib.TOMLDecodeError as exc:
        raise DocError(f"{block.where}: not TOML: {exc}") from None
    path = ctx.cwd / f"settings_{block.line}.toml"
    path.write_text(block.text, encoding="utf-8")
    load_settings(path)  # a ConfigError names the bad setting


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
async def test_the_blocks_of_a_document_run(path: Path, tmp_path: Path) -> None:
    found = blocks(path)
    if not found:
        return
    config = SimConfig(symbols=5, positions=2, seed=1, rate_hz=10.0)
    async with SimServer(config) as sim:
        keys = {"BYBIT_API_KEY": sim.api_key, "BYBIT_API_SECRET": sim.api_secret}
        ctx = DocContext(sim.base_url, sim.api_key, sim.api_secret, tmp_path, env=keys)
        skipped = []
        for block in found:
            reason = await _check_block(block, sim, ctx)
            if reason is not None:
                skipped.append(f"{block.where}: {reason}")
    assert len(skipped) <= 3, "too many skipped blocks in one file:\n" + "\n".join(skipped)
