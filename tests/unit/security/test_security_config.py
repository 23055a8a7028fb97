"""SECURITY.md's configuration claims: key sources, TLS always verified, loopback binds,
plain-text endpoints refused, dependency versions bounded."""

from __future__ import annotations

import argparse
import inspect
import re
import ssl
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bybit_hybrid.errors import ConfigError
from bybit_hybrid.service.cli import build_parser
from bybit_hybrid.service.http import OpsServer
from bybit_hybrid.service.keys import check_dotenv_permissions, load_keys
from bybit_hybrid.service.logs import REDACTOR
from bybit_hybrid.service.settings import AppSettings
from bybit_hybrid.sim import SimConfig
from bybit_hybrid.transport.endpoints import Endpoints
from bybit_hybrid.transport.http import AiohttpBackend
from bybit_hybrid.transport.ws import AiohttpWsBackend

ROOT = Path(__file__).resolve().parents[3]
CANARY = "CANARY-secret-5f0e1d2c3b4a"


# --- secrets come from the environment or a private .env -------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_dotenv_with_the_secret_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"BYBIT_API_KEY=k\nBYBIT_API_SECRET={CANARY}\n")
    dotenv.chmod(mode)
    with pytest.raises(ConfigError, match="readable by others") as info:
        check_dotenv_permissions(dotenv)
    assert CANARY not in str(info.value)


def test_private_dotenv_or_one_without_the_secret_is_accepted(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"BYBIT_API_SECRET={CANARY}\n")
    dotenv.chmod(0o600)
    check_dotenv_permissions(dotenv)
    dotenv.write_text("BYBIT_HYBRID_MODE=rest\n")
    dotenv.chmod(0o644)
    check_dotenv_permissions(dotenv)  # nothing secret in it
    check_dotenv_permissions(tmp_path / "missing")


def test_load_keys_reads_the_environment_checks_dotenv_and_registers_redaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BYBIT_API_KEY", "KEYCANARY1234")
    monkeypatch.setenv("BYBIT_API_SECRET", CANARY)
    assert load_keys() == ("KEYCANARY1234", CANARY)
    assert CANARY not in REDACTOR.redact(f"oops {CANARY}")
    (tmp_path / ".env").write_text(f"BYBIT_API_SECRET={CANARY}\n")
    (tmp_path / ".env").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_keys()


def test_no_command_takes_a_key_or_secret_flag() -> None:
    """Real account keys never come from argv (shell history, `ps`). `sim` is exempt: its
    `--api-key`/`--api-secret` set the simulator's own throwaway test credentials."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        if name == "sim":
            continue
        for action in command._actions:
            for flag in action.option_strings:
                assert not re.search(r"key|secret|password|token", flag), (name, flag)


# --- TLS is always verified --------------------------------------------------------------------


def _lax() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _verifies(context: ssl.SSLContext) -> bool:
    return context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_rest_backend_uses_a_verifying_context_and_refuses_a_lax_one() -> None:
    assert _verifies(AiohttpBackend()._tls)
    with pytest.raises(ValueError, match="must verify"):
        AiohttpBackend(tls_context=_lax())


def test_ws_backend_uses_a_verifying_context_and_refuses_a_lax_one() -> None:
    assert _verifies(AiohttpWsBackend()._tls)
    with pytest.raises(ValueError, match="must verify"):
        AiohttpWsBackend(tls_context=_lax())


class _Session:
    """Stands in for a lent aiohttp session; records what each connect/request passed."""

    def __init__(self) -> None:
        self.kwargs: list[dict[str, Any]] = []
        self.closed = False

    async def ws_connect(self, url: str, **kwargs: Any) -> Any:
        self.kwargs.append(kwargs)
        raise OSError("not really connecting")

    def request(self, method: str, url: Any, **kwargs: Any) -> Any:
        self.kwargs.append(kwargs)
        raise OSError("not really requesting")


async def test_ws_connect_passes_the_verifying_context_even_on_a_lent_session() -> None:
    session = _Session()
    backend = AiohttpWsBackend(session)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="connect failed"):
        await backend.connect("wss://stream.bybit.com/v5/private", timeout_s=1.0)
    assert _verifies(session.kwargs[0]["ssl"])


async def test_rest_request_passes_the_verifying_context_even_on_a_lent_session() -> None:
    session = _Session()
    backend = AiohttpBackend(session)  # type: ignore[arg-type]
    with pytest.raises(OSError):
        await backend.request("GET", "https://api.bybit.com/v5/market/time", {}, None)
    assert _verifies(session.kwargs[0]["ssl"])


def test_no_flag_or_setting_turns_tls_verification_off() -> None:
    """`--allow-insecure` only permits plain http to a non-loopback host; nothing disables
    certificate checks for https/wss."""
    flags = {
        flag
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
        for command in action.choices.values()
        for a in command._actions
        for flag in a.option_strings
    }
    assert not {f for f in flags if re.search(r"verify|no-tls|no-ssl|cert", f)}
    assert not {name for name in AppSettings.model_fields if re.search(r"verify|ssl|tls", name)}
    # Real endpoints are TLS.
    for endpoints in (
        Endpoints.select(),
        Endpoints.select(testnet=True),
        Endpoints.select(demo=True),
        Endpoints.select(base_url="https://example.com", allow_insecure=True),
    ):
        urls = (endpoints.rest_url, endpoints.public_ws_url, endpoints.private_ws_url)
        assert all(u.startswith(("https://", "wss://")) for u in urls), urls


def test_plain_http_is_refused_for_a_remote_host() -> None:
    with pytest.raises(ConfigError):
        Endpoints.select(base_url="http://example.com")
    with pytest.raises(ConfigError):
        Endpoints.select(base_url="ws://10.0.0.5:8080")
    Endpoints.select(base_url="http://127.0.0.1:8080")  # the simulator
    Endpoints.select(base_url="http://example.com", allow_insecure=True)  # explicit


# --- listeners bind to loopback by default -------------------------------------------------------


def test_simulator_and_metrics_server_bind_loopback_by_default() -> None:
    assert SimConfig().host == "127.0.0.1"
    assert AppSettings().metrics_host == "127.0.0.1"
    assert inspect.signature(OpsServer).parameters["host"].default == "127.0.0.1"
    sim_parser = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices["sim"]
    assert sim_parser.get_default("host") in (None, "127.0.0.1")
    host_action = next(a for a in sim_parser._actions if "--host" in a.option_strings)
    assert host_action.default == "127.0.0.1"


# --- dependencies -------------------------------------------------------------------------------


def test_every_dependency_has_a_lower_and_an_upper_bound() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for group in project.get("optional-dependencies", {}).values():
        specs += group
    assert specs
    for spec in specs:
        requirement = spec.split(";")[0]
        assert ">=" in requirement and "<" in requirement.replace("<=", "<"), spec
