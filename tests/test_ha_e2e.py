"""HA pairs end to end: real dehydrated + pebble + hooks/ns-hook.sh + a fake HA pair.

What counts is what each node holds and what a TLS client of each node's own SSL vserver
listener receives after a failover (verified against pebble's root alone), plus the run's exit
status and messages.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from cryptography import x509

from tests.conftest import PASSWORD, USER
from tests.fakens.ha import FakeHaPair
from tests.stack import Pebble, Stack

NAME = "www.example.test"
CERTKEY = "le-www.example.test"


@pytest.fixture
def pair(dataplane_port: int) -> Iterator[FakeHaPair]:
    """A fake HA pair; its primary (node a, 127.0.0.1) receives pebble's port-80 traffic."""
    with FakeHaPair(users={USER: PASSWORD}, dataplane_port=dataplane_port) as fakes:
        fakes.add_lbvserver("web", servicetype="HTTP", port=80, state="UP")
        fakes.add_sslvserver("vs-www")
        yield fakes


@pytest.fixture
def acme(tmp_path: Path, pebble: Pebble, pair: FakeHaPair) -> Stack:
    stack = Stack(tmp_path, pebble, pair.a)
    stack.env["NS_TLS_PIN"] = f"{pair.a.cert_sha256},{pair.b.cert_sha256}"
    stack.env["NS_BIND"] = f"{NAME}=vs-www"
    return stack


def pem_serial(path: Path) -> int:
    return int(x509.load_pem_x509_certificate(path.read_bytes()).serial_number)


def served_serial(node: Any, vserver: str, root: Path, hostname: Optional[str] = NAME) -> int:
    """Serial a TLS client of ``vserver`` on this node gets, the chain verified by ``root``."""
    context = ssl.create_default_context(cafile=str(root))
    with socket.create_connection((node.host, node.vserver_port(vserver)), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=hostname) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def held_serial(node: Any, certkey: str = CERTKEY) -> Optional[int]:
    found = [c for c in node.certkeys() if c["certkey"] == certkey]
    return int(str(found[0]["serial"]).replace(":", ""), 16) if found else None


def test_issuance_renewal_and_failover_serve_a_verifying_chain_on_the_new_primary(
        acme: Stack, pair: FakeHaPair) -> None:
    acme.env["NS_HA_VERIFY"] = "on"
    acme.run_dehydrated("-c", "-d", NAME)
    first = pem_serial(acme.certdir(NAME) / "cert.pem")
    assert held_serial(pair.a) == held_serial(pair.b) == first
    assert pair.b.files() == {**pair.b.files(), **{
        k: v for k, v in pair.a.files().items() if k.startswith("le-")}}

    acme.run_dehydrated("-c", "-x", "-d", NAME)  # forced renewal
    second = pem_serial(acme.certdir(NAME) / "cert.pem")
    assert second != first
    assert held_serial(pair.a) == held_serial(pair.b) == second
    assert pair.b.writes() == []  # nothing was ever written to the secondary
    assert pair.failures == []  # and nothing failed there

    pair.failover()
    assert pair.primary is pair.b
    assert served_serial(pair.b, "vs-www", acme.root) == second


def test_silent_file_sync_fails_the_run_naming_the_secondary_and_the_next_run_repairs(
        acme: Stack, pair: FakeHaPair) -> None:
    acme.env["NS_HA_VERIFY"] = "on"
    pair.silent_sync = True
    result = acme.run_dehydrated("-c", "-d", NAME, check=False)
    assert result.returncode != 0
    assert "HA secondary https://127.0.0.2:" in result.stderr
    assert ".crt missing" in result.stderr and ".key missing" in result.stderr
    assert held_serial(pair.a) is None  # undone: nothing half-deployed on the primary

    pair.silent_sync = False
    acme.run_dehydrated("-c", "-d", NAME)  # not due: the reconciliation deploys it
    issued = pem_serial(acme.certdir(NAME) / "cert.pem")
    assert held_serial(pair.a) == held_serial(pair.b) == issued
    pair.failover()
    assert served_serial(pair.b, "vs-www", acme.root) == issued


def test_warn_mode_goes_on_and_the_next_run_repairs_the_secondary(
        acme: Stack, pair: FakeHaPair) -> None:
    pair.silent_sync = True
    result = acme.run_dehydrated("-c", "-d", NAME)
    issued = pem_serial(acme.certdir(NAME) / "cert.pem")
    assert held_serial(pair.a) == issued and held_serial(pair.b) is None
    assert "NS_HA_VERIFY=warn" in result.stderr

    pair.silent_sync = False
    acme.run_dehydrated("-c", "-d", NAME)
    assert held_serial(pair.b) == issued
    pair.failover()
    assert served_serial(pair.b, "vs-www", acme.root) == issued


def test_ns_url_at_the_secondary_deploys_on_the_primary_and_says_so(
        acme: Stack, pair: FakeHaPair) -> None:
    acme.env["NS_URL"] = pair.b.url
    result = acme.run_dehydrated("-c", "-d", NAME)
    issued = pem_serial(acme.certdir(NAME) / "cert.pem")
    assert held_serial(pair.a) == held_serial(pair.b) == issued
    assert f"NS_URL {pair.b.url} is the HA secondary; using the primary at {pair.a.url}" in (
        result.stderr)
    assert pair.b.writes() == []
