"""NS_BIND end to end: real dehydrated + pebble + hooks/ns-hook.sh + the fake NetScaler.

What counts is what a TLS client of each SSL vserver's own listener receives (verified against
pebble's root alone), and which binding requests each run sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography import x509

from tests.stack import Stack
from tests.test_bindings import BIND_RESOURCE, binding_writes, hand_installed, served_serial
from tests.test_deploy import certkey


def pem_serial(path: Path) -> int:
    return int(x509.load_pem_x509_certificate(path.read_bytes()).serial_number)


def root_of(acme: Stack) -> Any:
    class Root:  # what served_serial needs: the PEM of the root
        pem = acme.root.read_bytes()
    return Root()


def test_first_issuance_replaces_a_hand_installed_certificate_and_renewal_keeps_bindings(
        acme: Stack, tmp_path: Path) -> None:
    ns, name = acme.ns, "www.example.test"
    ns.add_sslvserver("vs-www")  # SNI disabled, as on a fresh appliance
    hand_installed(ns, tmp_path, "vs-www")
    acme.env["NS_BIND"] = f"{name}=vs-www"
    acme.env["NS_VERIFY_SERVED"] = "on"
    acme.env["NS_VERIFY_CA_BUNDLE"] = str(acme.root)

    result = acme.run_dehydrated("-c", "-d", name)

    first = pem_serial(acme.certdir(name) / "cert.pem")
    assert served_serial(ns, "vs-www", root_of(acme), name) == first
    assert ns.ssl_bindings("vs-www") == [("le-www.example.test", False)]
    assert certkey(ns, "admin-www") is not None  # the old certkey stays, unbound
    assert "replacing admin-www" in result.stderr
    assert "the VIP serves serial" in result.stderr  # checked on the first deployment too

    start = len(ns.requests)
    acme.run_dehydrated("-c", "-x", "-d", name)
    second = pem_serial(acme.certdir(name) / "cert.pem")
    assert second != first
    assert served_serial(ns, "vs-www", root_of(acme), name) == second
    assert binding_writes(ns, start) == []  # renewed in place: no bind, no unbind


def test_two_certificates_on_one_sni_vserver(acme: Stack) -> None:
    ns = acme.ns
    ns.add_sslvserver("cs-main", sni=True)
    acme.basedir.mkdir(parents=True, exist_ok=True)
    (acme.basedir / "domains.txt").write_text("www.example.test\nshop.example.test > shop\n")
    acme.env["NS_BIND"] = "www.example.test=cs-main;shop=cs-main"

    acme.run_dehydrated("-c")

    www = pem_serial(acme.certdir("www.example.test") / "cert.pem")
    shop = pem_serial(acme.certdir("shop") / "cert.pem")
    root = root_of(acme)
    assert served_serial(ns, "cs-main", root, "www.example.test") == www
    assert served_serial(ns, "cs-main", root, "shop.example.test") == shop
    assert served_serial(ns, "cs-main", root, None) in (www, shop)  # a client without SNI


def test_a_binding_removed_by_hand_is_restored_by_the_next_daily_run(acme: Stack) -> None:
    ns, name = acme.ns, "back.example.test"
    ns.add_sslvserver("vs-back")
    acme.env["NS_BIND"] = f"{name}=vs-back"
    acme.run_dehydrated("-c", "-d", name)
    from ns_letsencrypt.session import open_client
    from tests.conftest import fake_settings

    with open_client(fake_settings(ns)) as client:  # the admin unbinds by hand
        client.delete(BIND_RESOURCE, "vs-back", args={"certkeyname": "le-back.example.test"})
    assert ns.ssl_bindings("vs-back") == []

    result = acme.run_dehydrated("-c", "-d", name)  # nothing is due

    assert "Skipping renew" in result.stdout
    assert "bound certkey le-back.example.test to SSL vserver vs-back" in result.stderr
    assert "WARNING" in result.stderr
    assert served_serial(ns, "vs-back", root_of(acme), name) == pem_serial(
        acme.certdir(name) / "cert.pem")
