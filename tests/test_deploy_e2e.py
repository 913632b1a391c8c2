"""End to end: real dehydrated + pebble + hooks/ns-hook.sh + the fake NetScaler.

The proof is what a TLS client gets from the fake's SSL data plane (the certkey bound to an SSL
vserver, with its linked chain), verified against pebble's root alone: the handshake succeeds
only when the appliance sends every intermediate. The stack fixtures come from tests/stack.py.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography import x509

from tests.stack import Pebble, Stack

VSERVER = "vs-ssl"


def serial_of_pem(path: Path) -> str:
    return _hex(x509.load_pem_x509_certificate(path.read_bytes()).serial_number)


def _hex(number: int) -> str:
    text = format(number, "X")
    return text.zfill(len(text) + len(text) % 2)


def served_serial(ns: Any, root: Path, hostname: str) -> str:
    """Serial served by the fake's TLS data plane, verified against ``root`` only."""
    context = ssl.create_default_context(cafile=str(root))
    with socket.create_connection(("127.0.0.1", ns.tls_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=hostname) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return _hex(x509.load_der_x509_certificate(der).serial_number)


def certkey(ns: Any, name: str) -> Any:
    return next((c for c in ns.certkeys() if c["certkey"] == name), None)


def bind(ns: Any, name: str) -> None:
    ns.add_sslvserver(VSERVER)
    ns.bind_certkey(VSERVER, name)


def chain_names(ns: Any, name: str) -> list[str]:
    names = []
    current = certkey(ns, name).get("linkcertkeyname")
    while current:
        names.append(current)
        current = certkey(ns, current).get("linkcertkeyname")
    return names


def test_issuance_and_forced_renewal_serve_through_the_same_binding(acme: Stack):
    ns, name = acme.ns, "www.example.test"
    acme.run_dehydrated("-c", "-d", name, config={"KEY_ALGO": "rsa"})
    bind(ns, "le-www.example.test")
    first = serial_of_pem(acme.certdir(name) / "cert.pem")
    assert served_serial(ns, acme.root, name) == first
    first_key_file = certkey(ns, "le-www.example.test")["key"]
    assert not ns.state.config_changed  # saved at the end of the run

    acme.run_dehydrated("-c", "-x", "-d", name, config={"KEY_ALGO": "rsa"})
    second = serial_of_pem(acme.certdir(name) / "cert.pem")
    assert second != first
    assert served_serial(ns, acme.root, name) == second  # same binding, new certificate
    assert certkey(ns, "le-www.example.test")["key"] != first_key_file  # key rotated
    assert first_key_file not in ns.files()  # superseded key removed


def test_two_intermediates_then_new_issuer_relinks_and_keeps_the_valid_old_cas(
        tmp_path: Path, pebble_factory: Callable[..., Pebble], ns: Any):
    chained = pebble_factory(chain_length=2)  # our own instance: we restart it below
    acme = Stack(tmp_path, chained, ns)
    name = "chain.example.test"  # default KEY_ALGO: ECDSA (with 0.7.0's EC PARAMETERS block)
    acme.run_dehydrated("-c", "-d", name)
    bind(ns, "le-chain.example.test")
    old_cas = chain_names(ns, "le-chain.example.test")
    assert len(old_cas) == 2
    assert served_serial(ns, acme.root, name) == serial_of_pem(acme.certdir(name) / "cert.pem")

    chained.restart()  # new root and intermediates: the issuer changes
    check = {"NS_VERIFY_SERVED": "on", "NS_VERIFY_ADDRESS": f"127.0.0.1:{ns.tls_port}",
             "NS_VERIFY_CA_BUNDLE": str(acme.root)}  # the renewal looks at the VIP itself
    result = acme.run_dehydrated("-c", "-x", "-d", name, env=check)
    assert "the VIP serves serial" in result.stderr, result.stderr
    new_cas = chain_names(ns, "le-chain.example.test")
    assert len(new_cas) == 2 and not set(new_cas) & set(old_cas)
    assert served_serial(ns, acme.root, name) == serial_of_pem(acme.certdir(name) / "cert.pem")
    # unreferenced but valid: kept for a later renewal from the same intermediates
    assert all(certkey(ns, ca) is not None for ca in old_cas)
    assert not [c for c in ns.certkeys() if c.get("linkcertkeyname") == old_cas[0]]


def test_same_first_label_in_two_domains_gets_two_certkeys(acme: Stack):
    (acme.basedir).mkdir(parents=True, exist_ok=True)
    (acme.basedir / "domains.txt").write_text("www.example.com\nwww.example.org\n")
    acme.run_dehydrated("-c")
    com, org = certkey(acme.ns, "le-www.example.com"), certkey(acme.ns, "le-www.example.org")
    assert com and org and com["serial"] != org["serial"]
    assert "www.example.com" in com["subject"] and "www.example.org" in org["subject"]


def test_certkey_deleted_on_the_appliance_is_redeployed_on_the_next_run(acme: Stack):
    ns, name = acme.ns, "gone.example.test"
    acme.run_dehydrated("-c", "-d", name)
    serial = serial_of_pem(acme.certdir(name) / "cert.pem")
    from ns_letsencrypt.session import open_client
    from tests.conftest import fake_settings

    with open_client(fake_settings(ns)) as client:
        client.delete("sslcertkey", "le-gone.example.test")
    assert certkey(ns, "le-gone.example.test") is None

    result = acme.run_dehydrated("-c", "-d", name)  # ordinary run: nothing to renew
    assert "Skipping renew" in result.stdout
    assert certkey(ns, "le-gone.example.test")["serial"] == serial


FAULTS = {  # the renewal's NITRO steps (link: see test_deploy.py, it needs a new issuer)
    "upload": dict(method="POST", resource="systemfile", action=None),
    "update": dict(method="POST", resource="sslcertkey", action="update"),
    "verify": dict(method="GET", resource="sslcertkey", name="le-fail.example.test"),
}


@pytest.mark.parametrize("step", list(FAULTS))
def test_failed_renewal_keeps_the_old_certificate_and_the_next_run_converges(
        acme: Stack, step: str):
    ns, name = acme.ns, "fail.example.test"
    acme.run_dehydrated("-c", "-d", name)
    bind(ns, "le-fail.example.test")
    old = serial_of_pem(acme.certdir(name) / "cert.pem")

    ns.inject(**FAULTS[step], kind="error", status=599, errorcode=1538,
              message="Certificate and private key do not match")
    result = acme.run_dehydrated("-c", "-x", "-d", name, check=False)
    assert result.returncode != 0
    assert f"step '{step}'" in result.stdout + result.stderr
    assert served_serial(ns, acme.root, name) == old

    acme.run_dehydrated("-c", "-d", name)  # no force: the reconciliation redeploys
    new = serial_of_pem(acme.certdir(name) / "cert.pem")
    assert new != old and served_serial(ns, acme.root, name) == new
