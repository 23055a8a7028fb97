"""`bybit-hybrid hub` and `stream --bus` as a user runs them: separate processes, one public
connection for the hub only, events on the bus, one-line errors for bad bus flags."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from bybit_hybrid.protocol.events import MarkUpdated
from bybit_hybrid.sim import SimServer
from tests.integration.bus_harness import fast_bus, hub_for, nats_client, public_topics, worker_for
from tests.integration.cli_support import clean_env, finish_cli, spawn_cli
from tests.integration.nats_support import NatsServer
from tests.support import CONTRACT_KEYS, UNIT_S, wait_for


async def _spawn(cwd: Path, env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await spawn_cli(cwd, clean_env(**env), *args)


async def test_hub_and_stream_worker_processes(
    sim: SimServer, nats_server: NatsServer, tmp_path: Path
) -> None:
    keys = {"BYBIT_API_KEY": sim.api_key, "BYBIT_API_SECRET": sim.api_secret}
    hub = await _spawn(
        tmp_path, {}, "hub", "--bus", nats_server.url, "--base-url", sim.base_url,
        "--duration", str(12 * UNIT_S), "--hub-id", "hub-cli", "--status-port", "0",
    )  # fmt: skip
    worker = await _spawn(
        tmp_path, keys, "stream", "--bus", nats_server.url, "--account", "acct1",
        "--base-url", sim.base_url, "--json", "--duration", str(6 * UNIT_S),
    )  # fmt: skip
    try:
        want = {f"tickers.{p.symbol}" for p in sim.exchange.open_positions()}
        # One public connection in all, the hub's, serving the worker's symbols.
        await wait_for(lambda: public_topics(sim) == [want], 10 * UNIT_S, "hub serving")
        assert hub.stdout is not None
        first = (await asyncio.wait_for(hub.stdout.readline(), 10 * UNIT_S)).decode()
        assert first.startswith("status on http://127.0.0.1:"), first
        async with aiohttp.ClientSession() as http:
            async with http.get(first.split()[-1] + "/status") as response:
                status = await response.json()
            assert status["hub"] == "hub-cli" and status["bus_connected"] is True
            assert status["demand"] == sorted(s.removeprefix("tickers.") for s in want)
            async with http.get(first.split()[-1] + "/health") as response:
                assert response.status == 200, await response.text()
        code, out, err = await finish_cli(worker)
        assert code == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert any(line["data"]["source"] == "ticker" for line in lines), "no bus mark"
        assert sim.api_secret not in err and sim.api_key not in err
        async with nats_client(nats_server.url) as nc:
            info = await nc.jetstream().stream_info("BYBIT_POSITIONS")
            assert info.state.messages == len(sim.exchange.open_positions())
            msg = await nc.jetstream().get_last_msg("BYBIT_POSITIONS", "bybit.positions.acct1")
            payload = json.loads(msg.data or b"{}")
            assert payload["account"] == "acct1" and set(payload["data"]) == CONTRACT_KEYS
            assert sim.api_key.encode() not in (msg.data or b"")
    finally:
        for proc in (hub, worker):
            if proc.returncode is None:
                proc.terminate()
        code, _out, hub_err = await finish_cli(hub)
    assert code in (0, -15), hub_err
    assert "Traceback" not in hub_err


async def test_bad_bus_flags_are_one_line_errors(sim: SimServer, tmp_path: Path) -> None:
    keys = {"BYBIT_API_KEY": sim.api_key, "BYBIT_API_SECRET": sim.api_secret}
    base = ("stream", "--base-url", sim.base_url, "--duration", "1")
    cases = {
        ("--bus", "nats://127.0.0.1:1"): "--bus needs --account NAME",
        ("--bus", "nats://127.0.0.1:1", "--account", "a.b"): "bus_account",
        ("--bus", "nats://127.0.0.1:1", "--account", "a", "--mode", "rest"): "needs mode hybrid",
        ("--bus", "http://127.0.0.1:1", "--account", "a"): "scheme must be nats://",
    }
    for flags, message in cases.items():
        code, _out, err = await finish_cli(await _spawn(tmp_path, keys, *base, *flags))
        assert code == 2, (flags, err)
        assert len(err.strip().splitlines()) == 1 and message in err, (flags, err)


async def test_a_hub_process_killed_hard_loses_no_mark_with_a_second_hub(
    sim: SimServer, nats_server: NatsServer, tmp_path: Path
) -> None:
    bus = fast_bus(nats_server.url)
    proc = await _spawn(
        tmp_path, {}, "hub", "--bus", nats_server.url, "--base-url", sim.base_url,
        "--duration", str(60 * UNIT_S), "--hub-id", "hub-proc",
    )  # fmt: skip
    hub_b = hub_for(sim, bus, "hub-b")
    worker, rec = worker_for(sim, bus, "alice")
    try:
        await hub_b.start()
        await worker.start()
        await worker.wait_ready(3 * UNIT_S)
        want = {"tickers.BTCUSDT", "tickers.ETHUSDT"}
        await wait_for(lambda: public_topics(sim) == [want, want], 10 * UNIT_S, "two hubs")
        proc.kill()  # SIGKILL: no goodbye, its sockets just die
        await proc.wait()
        sim.pause_ticks("BTCUSDT")
        tick = sim.exchange.instruments["BTCUSDT"].tick_size
        for step in range(1, 6):
            mark = sim.exchange.prices.mark("BTCUSDT") + step * tick
            await sim.set_mark("BTCUSDT", mark)
            await wait_for(
                lambda m=mark: any(  # type: ignore[misc]
                    isinstance(e, MarkUpdated) and e.view.mark_price == m
                    for _t, e in rec.core_events
                ),
                5 * UNIT_S,
                f"mark {mark} after the hub process died",
            )
        assert worker.get_status()["bus"]["mode"] == "bus"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await worker.stop()
        await hub_b.stop()
