"""Wrong keys through the Python API (issue 18 item 1): `wait_ready()` raises a typed error
naming the rejection as soon as Bybit answers, not a bare TimeoutError after 10 s, and the
README's example leaves no unclosed session behind."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from bybit_hybrid import AdaptiveBybitStream, BybitHybridStream, KeyRejectedError
from bybit_hybrid.facade import PositionStream
from bybit_hybrid.service.streams import rollout_stream
from bybit_hybrid.sim import SimServer
from bybit_hybrid.transport.errors import AUTH_CODES
from tests.docs.markdown import ROOT, blocks
from tests.docs.runner import DocContext, python_script
from tests.support import UNIT_S

WRONG_KEY, WRONG_SECRET = "WRONGKEY00000001", "WRONGSECRET0000000000000001"


def _streams(sim: SimServer) -> dict[str, PositionStream]:
    url = sim.base_url
    return {
        "hybrid": BybitHybridStream(WRONG_KEY, WRONG_SECRET, base_url=url),
        "rest": AdaptiveBybitStream(WRONG_KEY, WRONG_SECRET, base_url=url),
        "canary": rollout_stream("canary", WRONG_KEY, WRONG_SECRET, base_url=url),
        "hybrid-rollout": rollout_stream("hybrid", WRONG_KEY, WRONG_SECRET, base_url=url),
    }


@pytest.mark.parametrize("kind", ["hybrid", "rest", "canary", "hybrid-rollout"])
async def test_wait_ready_names_the_rejection_instead_of_timing_out(
    sim: SimServer, kind: str
) -> None:
    stream = _streams(sim)[kind]
    await stream.start()
    try:
        # Far longer than a rejection takes, far shorter than the old 10 s timeout.
        with pytest.raises(KeyRejectedError) as caught:
            await stream.wait_ready(timeout_s=5 * UNIT_S)
    finally:
        await stream.stop()
    error = caught.value
    assert error.ret_code in AUTH_CODES, error  # REST names the code even if the socket was first
    assert WRONG_SECRET not in str(error)
    assert stream.get_stats()["running"] is False  # it stopped itself: nothing to retry


async def test_a_rejection_after_ready_does_not_fail_wait_ready(sim: SimServer) -> None:
    stream = BybitHybridStream(sim.api_key, sim.api_secret, base_url=sim.base_url)
    async with stream:
        await stream.wait_ready(timeout_s=5 * UNIT_S)
        sim.faults.reject_auth(count=1)
        await stream.wait_ready(timeout_s=UNIT_S)  # still ready: the book is not lost


def _readme_examples() -> list[str]:
    found = [
        b.text
        for b in blocks(ROOT / "README.md")
        if b.lang == "python" and "wait_ready" in b.text and "asyncio.run" in b.text
    ]
    assert found, "README.md has no runnable Python example with wait_ready()"
    return found


async def test_the_readme_example_with_wrong_keys_fails_fast_and_cleanly(
    sim: SimServer, tmp_path: Path
) -> None:
    ctx = DocContext(sim.base_url, WRONG_KEY, WRONG_SECRET, tmp_path)
    for number, text in enumerate(_readme_examples()):
        block = blocks(ROOT / "README.md")[0].__class__(
            ROOT / "README.md", number, "python", text, None
        )
        script = tmp_path / f"example_{number}.py"
        script.write_text(python_script(block, ctx, None), encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-X",
            "dev",  # resource warnings on, as a careful user would see them
            str(script),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
        )
        _, err_bytes = await asyncio.wait_for(proc.communicate(), 8 * UNIT_S)
        err = err_bytes.decode(errors="replace")
        assert proc.returncode != 0, err
        assert "KeyRejectedError" in err or "rejected the API key" in err, err
        assert "TimeoutError" not in err, err
        assert "Unclosed" not in err and "ResourceWarning" not in err, err
        assert WRONG_SECRET not in err
