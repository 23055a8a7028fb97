"""Runs the fenced blocks of the docs against the embedded simulator (see test_doc_blocks).

Shell blocks (`sh`, `console`): each command is mapped onto this machine:

- `bybit-hybrid ...`, `.venv/bin/bybit-hybrid ...`, `python -m bybit_hybrid ...` run this
  checkout's CLI; `--mainnet`, `--testnet` and `--demo` become `--base-url <the simulator>`,
  `--metrics-port N` becomes port 0 (the bound port is read from the `metrics on` line and
  later `curl`s to N go there), and `--duration S` is capped at `MAX_DURATION_S`.
- A command that ends by itself (`--duration`, `replay`, `config`) must exit 0. One that runs
  until stopped (`run`, `stream`, `sim`) runs in the background until its first stdout line;
  the block's `curl`s then talk to it, and it is stopped with SIGINT (it must exit 0) before
  the next command or at the end of the block.
- `export NAME=...` sets the environment of the file's later commands; `...` as the value of
  BYBIT_API_KEY / BYBIT_API_SECRET stands for the simulator's keys.
- Setting up (`python3 -m venv`, `pip install`) is already done (the tests run in that
  environment) and `python -m pytest` is this very suite: both are taken as done.
- In a `console` block, `$ ` starts a command and the lines below it are its expected
  output: each must match a line the command printed, any run of digits matching any digits.

Python blocks run as scripts, with `testnet=True/False` / `demo=True` replaced by the
simulator's `base_url`, the placeholder keys `"KEY"`/`"SECRET"` by the simulator's and
`asyncio.sleep(N)` capped at one second; `test_*` functions a block defines are called.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.docs.markdown import Block
from tests.support import UNIT_S

MAX_DURATION_S = 3.0
_SETUP = (("python3", "-m", "venv"), ("python", "-m", "venv"))
_ENDPOINT_FLAGS = ("--mainnet", "--testnet", "--demo")
_LONG_RUNNING = ("run", "stream", "sim")


class DocError(AssertionError):
    """A block that does not do what its docs say; the message names file, line and block."""


@dataclass
class DocContext:
    """What the blocks of one document share: the simulator, a working directory, the
    environment set by `export`, and the metrics ports the docs used."""

    base_url: str
    api_key: str
    api_secret: str
    cwd: Path
    # The keys are set as README's quick start sets them; an `export` may change them.
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)


@dataclass
class _Background:
    argv: list[str]
    proc: asyncio.subprocess.Process
    first_line: str


def _commands(block: Block) -> list[tuple[str, list[str]]]:
    """(command line, expected output lines) in order; `&&` chains are split."""
    lines = block.text.splitlines()
    found: list[tuple[str, list[str]]] = []
    console = block.lang == "console"
    for line in lines:
        if not line.strip():
            continue
        if console and not line.startswith("$ "):
            if not found:
                raise DocError(f"{block.where}: output before any `$ ` command: {line!r}")
            found[-1][1].append(line)
            continue
        command = line[2:] if console else line
        for part in command.split("&&"):
            if part.strip():
                found.append((part.strip(), []))
    return found


def _cli_args(words: list[str]) -> list[str] | None:
    """The arguments after the program when `words` runs the bybit-hybrid CLI, else None."""
    if words and words[0] in ("bybit-hybrid", ".venv/bin/bybit-hybrid"):
        return words[1:]
    if (
        len(words) >= 3
        and words[0].endswith(("python", "python3"))
        and words[1:3]
        == [
            "-m",
            "bybit_hybrid",
        ]
    ):
        return words[3:]
    return None


def _map_cli(args: list[str], ctx: DocContext, where: str) -> tuple[list[str], str | None]:
    """This machine's argv for the documented arguments; also the doc's metrics port."""
    out: list[str] = []
    doc_port: str | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _ENDPOINT_FLAGS:
            out += ["--base-url", ctx.base_url]
        elif arg == "--metrics-port" and i + 1 < len(args):
            doc_port = args[i + 1]
            out += ["--metrics-port", "0"]
            i += 1
        elif arg == "--duration" and i + 1 < len(args):
            out += ["--duration", str(min(float(args[i + 1]), MAX_DURATION_S))]
            i += 1
        else:
            out.append(arg)
        i += 1
    if not out:
        raise DocError(f"{where}: `bybit-hybrid` without a command")
    return [sys.executable, "-m", "bybit_hybrid", *out], doc_port


def _env(ctx: DocContext) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYBIT_")}
    env.update({"BYBIT_HYBRID_STATE_DB": str(ctx.cwd / "state.sqlite3"), **ctx.env})
    return env


def _matches(expected: str, printed: list[str]) -> bool:
    pattern = re.escape(expected.strip())
    pattern = re.sub(r"\d+", r"\\d+", pattern).replace(r"\.\.\.", ".*")
    return any(re.fullmatch(pattern, line.strip()) for line in printed)


async def run_shell_block(block: Block, ctx: DocContext) -> None:
    background: list[_Background] = []
    try:
        for command, expected in _commands(block):
            where = f"{block.where}: `{command}`"
            words = shlex.split(command, comments=True)
            if not words:
                continue
            if words[0] == "curl":
                await _curl(words, ctx, where)
                continue
            await _stop_all(background, where)
            if words[0] == "export":
                _export(words[1:], ctx)
            elif _is_setup(words):
                continue
            elif (args := _cli_args(words)) is not None:
                printed = await _run_cli(args, ctx, where, background, max(1, len(expected)))
                missing = [line for line in expected if not _matches(line, printed)]
                if missing:
                    raise DocError(
                        f"{where}: the documented output {missing} is not in what it printed:"
                        f"\n{chr(10).join(printed)}"
                    )
            else:
                raise DocError(
                    f"{where}: not a command this test knows how to run here; add "
                    "`<!-- doctest: skip REASON -->` above the block if it cannot run in CI"
                )
    finally:
        await _stop_all(background, block.where, check=False)


def _is_setup(words: list[str]) -> bool:
    if tuple(words[:3]) in _SETUP:
        return True
    if len(words) >= 2 and words[0].endswith("pip") and words[1] == "install":
        return True
    return words[0].endswith(("python", "python3")) and words[1:3] == ["-m", "pytest"]


def _export(assignments: list[str], ctx: DocContext) -> None:
    secrets = {"BYBIT_API_KEY": ctx.api_key, "BYBIT_API_SECRET": ctx.api_secret}
    for item in assignments:
        name, _, value = item.partition("=")
        ctx.env[name] = secrets.get(name, value) if value in ("...", "") else value


async def _run_cli(
    args: list[str], ctx: DocContext, where: str, background: list[_Background], lines: int
) -> list[str]:
    """Runs one CLI command; a long-running one until it printed `lines` lines."""
    argv, doc_port = _map_cli(args, ctx, where)
    command = next((a for a in args if not a.startswith("-")), "")
    ends_by_itself = "--duration" in args or command not in _LONG_RUNNING
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ctx.cwd,
        env=_env(ctx),
    )
    if ends_by_itself:
        out, err = await _communicate(proc, 60 * UNIT_S, where)
        if proc.returncode != 0:
            raise DocError(f"{where}: exit code {proc.returncode}\n{err}")
        _check_output(args, out, where)
        return out.splitlines()
    assert proc.stdout is not None
    printed: list[str] = []
    metrics = re.compile(r"metrics on http://[\d.]+:(\d+)")

    def enough() -> bool:
        if doc_port is not None:  # other start-up lines may come first
            return any(metrics.search(line) for line in printed)
        return len(printed) >= lines

    while not enough():
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 20 * UNIT_S)).decode()
        except TimeoutError:
            proc.kill()
            raise DocError(f"{where}: printed {printed} and then nothing") from None
        if not line:
            _, err = await _communicate(proc, 10 * UNIT_S, where)
            raise DocError(f"{where}: ended at once (exit code {proc.returncode})\n{err}")
        printed.append(line.rstrip("\n"))
    first = printed[0]
    if doc_port is not None:
        port = next(m.group(1) for line in printed if (m := metrics.search(line)))
        ctx.ports[doc_port] = int(port)
    _check_output(args, "\n".join(printed), where)
    background.append(_Background(argv, proc, first))
    return printed


def _check_output(args: list[str], out: str, where: str) -> None:
    """`--json` promises one JSON object per line on stdout."""
    if "--json" not in args:
        return
    for line in out.splitlines():
        try:
            json.loads(line)
        except ValueError:
            raise DocError(f"{where}: --json printed a line that is not JSON: {line!r}") from None


async def _communicate(
    proc: asyncio.subprocess.Process, timeout_s: float, where: str
) -> tuple[str, str]:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise DocError(f"{where}: still running after {timeout_s:g} s") from None
    stderr = err.decode(errors="replace")
    if "Traceback" in stderr:
        raise DocError(f"{where}: a traceback on stderr\n{stderr}")
    return out.decode(errors="replace"), stderr


async def _stop_all(background: list[_Background], where: str, *, check: bool = True) -> None:
    while background:
        job = background.pop()
        if job.proc.returncode is None:
            job.proc.send_signal(signal.SIGINT)
        _, err = await _communicate(job.proc, 20 * UNIT_S, where)
        if check and job.proc.returncode != 0:
            raise DocError(f"{where}: {job.argv[3:]} exited {job.proc.returncode} on Ctrl-C\n{err}")


async def _curl(words: list[str], ctx: DocContext, where: str) -> None:
    url = next((w for w in words[1:] if not w.startswith("-")), None)
    if url is None:
        raise DocError(f"{where}: curl without a URL")
    match = re.fullmatch(r"(?:https?://)?([\w.]+):(\d+)(/\S*)?", url)
    if match is None or match.group(2) not in ctx.ports:
        raise DocError(f"{where}: {url} is not a port a documented command opened")
    target = f"http://{match.group(1)}:{ctx.ports[match.group(2)]}{match.group(3) or '/'}"
    async with aiohttp.ClientSession() as session, session.get(target) as response:
        body = await response.text()
    if response.status not in (200, 503) or not body:
        raise DocError(f"{where}: HTTP {response.status} {body[:200]!r}")


def python_script(block: Block, ctx: DocContext, drive: str | None) -> str:
    """The block as a script for this machine (see the module docstring)."""
    text = block.text
    text = re.sub(r"\b(testnet|demo)=(True|False)", f"base_url={ctx.base_url!r}", text)
    text = text.replace('"KEY"', repr(ctx.api_key)).replace('"SECRET"', repr(ctx.api_secret))
    text = re.sub(r"asyncio\.sleep\(\s*\d+(\.\d+)?\s*\)", "asyncio.sleep(1)", text)
    runner = [
        "",
        "for _name, _test in list(globals().items()):",
        "    if _name.startswith('test_') and callable(_test):",
        "        _test()",
    ]
    if drive is not None:
        runner += [
            "import asyncio as _asyncio",
            "async def _drive() -> None:",
            f"    subject = {drive}({ctx.api_key!r}, {ctx.api_secret!r})",
            "    await subject.start()",
            "    for _ in range(100):",
            "        if getattr(subject, 'positions', None):",
            "            break",
            "        await _asyncio.sleep(0.1)",
            "    await subject.stop()",
            f"    assert subject.positions, '{drive} saw no position'",
            f"    print('{drive} saw', sorted(subject.positions))",
            "_asyncio.run(_drive())",
        ]
    return text + "\n".join(runner) + "\n"


async def run_python_block(block: Block, ctx: DocContext, drive: str | None) -> None:
    script = ctx.cwd / f"block_{block.path.stem}_{block.line}.py"
    script.write_text(python_script(block, ctx, drive), encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ctx.cwd,
        env=_env(ctx),
    )
    _, err = await _communicate(proc, 60 * UNIT_S, block.where)
    if proc.returncode != 0:
        raise DocError(f"{block.where}: exit code {proc.returncode}\n{err}")
    if "Unclosed" in err:
        raise DocError(f"{block.where}: left a session or connection unclosed\n{err}")
