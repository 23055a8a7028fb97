"""Mutual TLS on the bus: a nats-server that verifies client certificates (`--tlsverify`)
admits a hub and a worker given `ca_file` + `cert_file` + `key_file`, and marks flow; without
a client certificate the connection is refused. Certificates are made by `openssl` per test."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.errors import Error as NatsError

from bybit_hybrid.bus.settings import BusSettings
from bybit_hybrid.bus.setup import connect
from bybit_hybrid.sim import SimServer
from tests.integration.bus_harness import BusRig, fast_bus, public_topics
from tests.integration.nats_support import NatsServer
from tests.support import UNIT_S, wait_for

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(where: Path) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all PEM."""
    where.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=bus-test-ca", cwd=where,
    )  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (where / f"{name}.ext").write_text(ext)
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN=bus-test-{name}", cwd=where,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext",
            cwd=where,
        )  # fmt: skip
    return where


@pytest.fixture
async def tls_nats(tmp_path: Path) -> AsyncIterator[tuple[NatsServer, Path]]:
    certs = make_certs(tmp_path / "certs")
    server = NatsServer(
        tmp_path / "nats",
        (
            "--tls", "--tlsverify", "--tlscert", str(certs / "server.pem"),
            "--tlskey", str(certs / "server.key"), "--tlscacert", str(certs / "ca.pem"),
        ),
    )  # fmt: skip
    await server.start()
    try:
        yield server, certs
    finally:
        await server.stop()


async def test_client_certificates_get_a_hub_and_a_worker_onto_a_verifying_server(
    sim: SimServer, tls_nats: tuple[NatsServer, Path]
) -> None:
    server, certs = tls_nats
    url = f"tls://127.0.0.1:{server.port}"
    rig = BusRig(sim, server)
    rig.bus = fast_bus(
        url,
        ca_file=certs / "ca.pem",
        cert_file=certs / "client.pem",
        key_file=certs / "client.key",
    )
    assert "client.key" not in repr(rig.bus)  # the key's path is masked in reprs too
    try:
        await rig.hub()
        worker, _rec = await rig.worker()
        want = {"tickers.BTCUSDT", "tickers.ETHUSDT"}
        await wait_for(lambda: public_topics(sim) == [want], 5 * UNIT_S, "hub serves over TLS")
        await wait_for(
            lambda: worker.get_status()["bus"]["marks_received"] > 0, 5 * UNIT_S, "marks"
        )
        assert worker.get_status()["bus"]["mode"] == "bus"
    finally:
        await rig.close()
    # The same server without a client certificate: refused (bounded first connect).
    no_cert = BusSettings(url, ca_file=certs / "ca.pem", connect_timeout_s=1.0 * UNIT_S)
    with pytest.raises((NatsError, OSError, TimeoutError)):
        nc = await connect(no_cert, "no-cert")
        await nc.close()


def test_bad_tls_files_are_clear_errors_naming_the_file(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    with pytest.raises(ValueError, match="key_file needs cert_file"):
        BusSettings("tls://h:1", key_file=certs / "client.key")
    with pytest.raises(ValueError, match=r"certificate '.*client\.pem': "):
        BusSettings("tls://h:1", cert_file=certs / "client.pem")  # no key in that file
    # The certificate and its key in one PEM (what --bus-identity takes) is fine.
    identity = tmp_path / "identity.pem"
    identity.write_text((certs / "client.pem").read_text() + (certs / "client.key").read_text())
    assert BusSettings("tls://h:1", cert_file=identity).tls_context() is not None
    with pytest.raises(ValueError, match=r"CA file '.*missing\.pem'"):
        BusSettings("tls://h:1", ca_file=tmp_path / "missing.pem")
    (tmp_path / "junk.key").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n")
    with pytest.raises(ValueError, match=r"certificate '.*client\.pem' with key '.*junk\.key'"):
        BusSettings("tls://h:1", cert_file=certs / "client.pem", key_file=tmp_path / "junk.key")
    # A key that does not match the certificate.
    with pytest.raises(ValueError, match=r"server\.key"):
        BusSettings("tls://h:1", cert_file=certs / "client.pem", key_file=certs / "server.key")
