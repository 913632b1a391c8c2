"""The fake NetScaler's SSL half, spoken to with raw HTTP: systemfile, sslcertkey, SSL vserver
bindings and the TLS data plane, with real certificates from a tiny test PKI."""

from __future__ import annotations

import base64
import re
import socket
import ssl
from collections.abc import Iterator
from typing import Any, Optional

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import PASSWORD, USER
from tests.pki import EC_PARAMS_P256, Hierarchy, Issued, make_hierarchy, make_leaf

SSL_DIR = "/nsconfig/ssl"
HOST = "www.example.test"


class Nitro:
    """Bare NITRO over plain HTTP with per-request header authentication."""

    def __init__(self, fake: Any) -> None:
        self.base = f"{fake.http_url}/nitro/v1/config/"
        self.session = requests.Session()
        self.session.headers.update({"X-NITRO-USER": USER, "X-NITRO-PASS": PASSWORD})

    def call(self, method: str, resource: str, name: Optional[str] = None, *,
             query: str = "", body: Any = None) -> tuple[int, dict[str, Any]]:
        url = self.base + resource + (f"/{name}" if name else "") + (f"?{query}" if query else "")
        payload = None if body is None else {resource: body}
        response = self.session.request(method, url, json=payload, timeout=10)
        return response.status_code, (response.json() if response.content else {})

    def upload(self, name: str, data: bytes, location: str = SSL_DIR) -> tuple[int, dict[str, Any]]:
        return self.call("POST", "systemfile", body={
            "filename": name, "filelocation": location, "fileencoding": "BASE64",
            "filecontent": base64.b64encode(data).decode("ascii")})

    def add_certkey(self, name: str, issued: Issued, *, with_key: bool = True,
                    key_pem: Optional[bytes] = None, **extra: Any) -> tuple[int, dict[str, Any]]:
        """Upload ``<name>.crt`` (and ``<name>.key``) and add the certkey."""
        assert self.upload(f"{name}.crt", issued.pem)[0] == 201
        body: dict[str, Any] = {"certkey": name, "cert": f"{name}.crt", "inform": "PEM", **extra}
        if with_key:
            assert self.upload(f"{name}.key", key_pem or issued.key_pem())[0] == 201
            body["key"] = f"{name}.key"
        return self.call("POST", "sslcertkey", body=body)

    def certkey(self, name: str) -> dict[str, Any]:
        status, body = self.call("GET", "sslcertkey", name)
        assert status == 200, body
        return dict(body["sslcertkey"][0])


def error(answer: tuple[int, dict[str, Any]]) -> tuple[int, int, str]:
    status, body = answer
    return status, body.get("errorcode", 0), body.get("message", "")


@pytest.fixture
def nitro(fake: Any) -> Iterator[Nitro]:
    client = Nitro(fake)
    yield client
    client.session.close()


@pytest.fixture(scope="module")
def rsa_pki() -> Hierarchy:
    return make_hierarchy("R", algo="rsa")


@pytest.fixture(scope="module")
def ec_pki() -> Hierarchy:
    return make_hierarchy("E", algo="ec")


def serial_of(issued: Issued) -> str:
    digits = format(issued.cert.serial_number, "X")
    return digits.zfill(len(digits) + len(digits) % 2)


# --- systemfile --------------------------------------------------------------------------------

def test_systemfile_upload_list_read_delete(nitro: Nitro) -> None:
    assert nitro.upload("a.pem", b"hello") == (201, {"errorcode": 0, "message": "Done",
                                                     "severity": "NONE"})
    assert error(nitro.upload("a.pem", b"again", location="/nsconfig/ssl/")) == (
        409, 1642, "Cannot create output file. File already exists")

    status, listing = nitro.call("GET", "systemfile", query="args=filelocation:%2Fnsconfig%2Fssl")
    entry = next(f for f in listing["systemfile"] if f["filename"] == "a.pem")
    assert status == 200 and "filecontent" not in entry

    for name, query in (("a.pem", "args=filelocation:%2Fnsconfig%2Fssl%2F"),
                        (None, "args=filename:a.pem,filelocation:%2Fnsconfig%2Fssl")):
        status, one = nitro.call("GET", "systemfile", name, query=query)
        assert status == 200
        assert base64.b64decode(one["systemfile"][0]["filecontent"]) == b"hello"
        assert one["systemfile"][0]["fileencoding"] == "BASE64"

    where = "args=filelocation:%2Fnsconfig%2Fssl"
    assert nitro.call("DELETE", "systemfile", "a.pem", query=where)[0] == 200
    assert error(nitro.call("GET", "systemfile", "a.pem", query=where))[:2] == (404, 258)
    assert error(nitro.call("DELETE", "systemfile", "a.pem", query=where))[:2] == (404, 258)


def test_systemfile_rejects_long_names_paths_and_missing_location(nitro: Nitro) -> None:
    assert error(nitro.upload("x" * 64, b"data")) == (
        599, 1106, "String length exceeds maximum [fileName, 63]")
    assert nitro.upload("x" * 63, b"data")[0] == 201
    assert error(nitro.upload("../escape.pem", b"data"))[0] == 599
    assert error(nitro.call("GET", "systemfile")) == (599, 1095, "Required argument missing")


# --- sslcertkey add / show ---------------------------------------------------------------------

def test_add_reports_fields_like_show_ssl_certkey(nitro: Nitro, rsa_pki: Hierarchy) -> None:
    leaf = make_leaf(rsa_pki.issuer, [HOST, "example.test"], algo="rsa")
    assert nitro.add_certkey("le-www", leaf)[0] == 201
    assert nitro.add_certkey("le-int", rsa_pki.issuer, with_key=False)[0] == 201

    shown = nitro.certkey("le-www")
    assert shown["cert"] == "le-www.crt" and shown["key"] == "le-www.key"
    assert shown["serial"] == serial_of(leaf) and shown["serial"] == shown["serial"].upper()
    assert shown["issuer"] == "O=Test PKI,CN=Test Intermediate R1"
    assert shown["subject"] == f"CN={HOST}"
    assert shown["sandns"] == [HOST, "example.test"]
    assert shown["status"] == "Valid" and shown["daystoexpiration"] in (89, 90)
    assert re.fullmatch(r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} GMT",
                        shown["clientcertnotafter"])
    assert shown["certificatetype"] == ["SRVR_CERT"]
    assert (shown["publickey"], shown["publickeysize"]) == ("RSA", 2048)
    assert "linkcertkeyname" not in shown
    assert nitro.certkey("le-int")["certificatetype"] == ["INTM_CERT"]
    assert "key" not in nitro.certkey("le-int")


def test_add_accepts_dehydrated_ec_key_with_parameters_block(nitro: Nitro,
                                                              ec_pki: Hierarchy) -> None:
    leaf = make_leaf(ec_pki.issuer, [HOST])
    key_pem = EC_PARAMS_P256 + leaf.key_pem(serialization.PrivateFormat.TraditionalOpenSSL)
    assert nitro.add_certkey("le-ec", leaf, key_pem=key_pem)[0] == 201
    assert nitro.certkey("le-ec")["publickey"] == "ECC"


def test_same_content_under_another_name_names_the_existing_certkey(
        nitro: Nitro, rsa_pki: Hierarchy) -> None:
    assert nitro.add_certkey("ca-first", rsa_pki.issuer, with_key=False)[0] == 201
    assert error(nitro.add_certkey("ca-second", rsa_pki.issuer, with_key=False)) == (
        409, 273, "Resource already exists [certkeyName Contents, ca-first]")


def test_add_rejections(nitro: Nitro, ec_pki: Hierarchy) -> None:
    leaf, other = make_leaf(ec_pki.issuer, [HOST]), make_leaf(ec_pki.issuer, [HOST])
    assert error(nitro.add_certkey("n" * 32, leaf)) == (
        599, 1106, "String length exceeds maximum [certkeyName, 31]")
    assert error(nitro.add_certkey("mismatch", leaf, key_pem=other.key_pem())) == (
        599, 1538, "Certificate and private key do not match")
    assert error(nitro.add_certkey("nodomain", leaf, nodomaincheck=True))[:2] == (599, 1090)
    assert error(nitro.call("POST", "sslcertkey", body={"certkey": "nofile", "cert": "no.crt"}
                            ))[:2] == (599, 1631)
    assert nitro.upload("garbage.crt", b"not a certificate")[0] == 201
    assert error(nitro.call("POST", "sslcertkey", body={"certkey": "garbage",
                                                        "cert": "garbage.crt"}))[:2] == (599, 1536)

    locked = leaf.key_pem(password=b"pass-phrase")
    assert error(nitro.add_certkey("locked", leaf, key_pem=locked))[:2] == (599, 1537)
    assert nitro.call("POST", "sslcertkey", body={
        "certkey": "unlocked", "cert": "locked.crt", "key": "locked.key",
        "password": True, "passplain": "pass-phrase"})[0] == 201
    assert error(nitro.call("POST", "sslcertkey", body={
        "certkey": "unlocked", "cert": "locked.crt"})) == (409, 273, "Resource already exists")


def test_show_missing_certkey_is_599_1540_and_filters_work(nitro: Nitro,
                                                           ec_pki: Hierarchy) -> None:
    assert error(nitro.call("GET", "sslcertkey", "nope")) == (
        599, 1540, "Certificate does not exist")
    leaf = make_leaf(ec_pki.issuer, [HOST])
    nitro.add_certkey("le-filter", leaf)
    status, found = nitro.call("GET", "sslcertkey", query=f"filter=serial:{serial_of(leaf)}")
    assert [c["certkey"] for c in found["sslcertkey"]] == ["le-filter"]
    status, found = nitro.call("GET", "sslcertkey", query="filter=certkey:%2F%5Ele-%2F")
    assert [c["certkey"] for c in found["sslcertkey"]] == ["le-filter"]
    status, found = nitro.call("GET", "sslcertkey", query="attrs=certkey,daystoexpiration")
    assert status == 200
    assert all(set(c) <= {"certkey", "daystoexpiration"} for c in found["sslcertkey"])
    # a fresh appliance has its built-in certificate
    assert "ns-server-certificate" in [c["certkey"] for c in found["sslcertkey"]]


# --- link / unlink -------------------------------------------------------------------------------

def test_link_checks_issuer_self_loops_and_existing_links(nitro: Nitro, rsa_pki: Hierarchy,
                                                          ec_pki: Hierarchy) -> None:
    leaf = make_leaf(rsa_pki.issuer, [HOST], algo="rsa")
    nitro.add_certkey("le-leaf", leaf)
    nitro.add_certkey("le-int-r", rsa_pki.issuer, with_key=False)
    nitro.add_certkey("le-int-e", ec_pki.issuer, with_key=False)
    nitro.add_certkey("le-root-r", rsa_pki.root, with_key=False)

    def link(name: str, ca: str) -> tuple[int, int, str]:
        return error(nitro.call("POST", "sslcertkey", query="action=link",
                                body={"certkey": name, "linkcertkeyname": ca}))

    assert link("le-leaf", "le-int-e")[:2] == (599, 1548)
    assert link("le-leaf", "le-leaf")[:2] == (599, 1543)
    assert link("le-leaf", "nope")[:2] == (599, 1540)
    assert link("le-leaf", "le-int-r") == (200, 0, "Done")
    assert nitro.certkey("le-leaf")["linkcertkeyname"] == "le-int-r"
    assert link("le-leaf", "le-int-r")[:2] == (409, 273)
    assert link("le-int-r", "le-root-r")[0] == 200
    assert link("le-root-r", "le-leaf")[:2] == (599, 1677)

    unlink = {"certkey": "le-leaf"}
    assert nitro.call("POST", "sslcertkey", query="action=unlink", body=unlink)[0] == 200
    assert "linkcertkeyname" not in nitro.certkey("le-leaf")
    assert error(nitro.call("POST", "sslcertkey", query="action=unlink", body=unlink))[:2] == (
        599, 1545)


# --- update --------------------------------------------------------------------------------------

def update(nitro: Nitro, name: str, issued: Issued, tag: str, **extra: Any) -> tuple[int, int, str]:
    nitro.upload(f"{name}-{tag}.crt", issued.pem)
    nitro.upload(f"{name}-{tag}.key", issued.key_pem())
    return error(nitro.call("POST", "sslcertkey", query="action=update", body={
        "certkey": name, "cert": f"{name}-{tag}.crt", "key": f"{name}-{tag}.key", **extra}))


def test_update_keeps_binding_and_checks_domain(fake: Any, nitro: Nitro,
                                                ec_pki: Hierarchy) -> None:
    nitro.add_certkey("le-up", make_leaf(ec_pki.issuer, [HOST]))
    fake.add_sslvserver("vs-ssl")
    fake.bind_certkey("vs-ssl", "le-up")

    renewed = make_leaf(ec_pki.issuer, [HOST])
    assert update(nitro, "le-up", renewed, "2") == (200, 0, "Done")
    assert nitro.certkey("le-up")["serial"] == serial_of(renewed)
    status, bound = nitro.call("GET", "sslcertkey_sslvserver_binding", "le-up")
    assert status == 200
    assert [b["servername"] for b in bound["sslcertkey_sslvserver_binding"]] == ["vs-ssl"]

    wider = make_leaf(ec_pki.issuer, [HOST, "api.example.test"])
    assert update(nitro, "le-up", wider, "3")[:2] == (599, 3585)
    assert update(nitro, "le-up", wider, "4", nodomaincheck=True)[0] == 200
    assert nitro.certkey("le-up")["sandns"] == [HOST, "api.example.test"]
    assert update(nitro, "le-up", make_leaf(ec_pki.issuer, [HOST]), "5",
                  nodomaincheck=True, key="le-up-4.key")[:2] == (599, 1538)

    same_key = make_leaf(ec_pki.issuer, [HOST, "api.example.test"], key=wider.key)
    nitro.upload("le-up-6.crt", same_key.pem)
    assert nitro.call("POST", "sslcertkey", query="action=update", body={
        "certkey": "le-up", "cert": "le-up-6.crt"})[0] == 200
    assert nitro.certkey("le-up")["key"] == "le-up-4.key"
    assert nitro.call("PUT", "sslcertkey", body={"certkey": "le-up", "cert": "x.crt"}
                      )[1]["errorcode"] == 1090
    assert nitro.call("PUT", "sslcertkey", body={"certkey": "le-up", "expirymonitor": "ENABLED",
                                                 "notificationperiod": 30})[0] == 200
    assert nitro.certkey("le-up")["expirymonitor"] == "ENABLED"


def test_update_keeps_link_only_while_the_ca_still_issued_the_certificate(
        nitro: Nitro, rsa_pki: Hierarchy, ec_pki: Hierarchy) -> None:
    nitro.add_certkey("le-lk", make_leaf(ec_pki.issuer, [HOST]))
    nitro.add_certkey("le-int", ec_pki.issuer, with_key=False)
    nitro.call("POST", "sslcertkey", query="action=link",
               body={"certkey": "le-lk", "linkcertkeyname": "le-int"})
    assert update(nitro, "le-lk", make_leaf(ec_pki.issuer, [HOST]), "2")[0] == 200
    assert nitro.certkey("le-lk")["linkcertkeyname"] == "le-int"
    assert update(nitro, "le-lk", make_leaf(rsa_pki.issuer, [HOST]), "3")[0] == 200
    assert "linkcertkeyname" not in nitro.certkey("le-lk")


# --- delete and bindings -------------------------------------------------------------------------

def test_delete_refuses_referenced_certkeys(fake: Any, nitro: Nitro, ec_pki: Hierarchy) -> None:
    nitro.add_certkey("le-del", make_leaf(ec_pki.issuer, [HOST]))
    nitro.add_certkey("le-del-ca", ec_pki.issuer, with_key=False)
    nitro.call("POST", "sslcertkey", query="action=link",
               body={"certkey": "le-del", "linkcertkeyname": "le-del-ca"})
    fake.add_sslvserver("vs-del")
    assert nitro.call("PUT", "sslvserver_sslcertkey_binding",
                      body={"vservername": "vs-del", "certkeyname": "le-del"})[0] == 201

    for name in ("le-del", "le-del-ca", "ns-server-certificate"):
        assert error(nitro.call("DELETE", "sslcertkey", name))[:2] == (599, 1541)
    assert error(nitro.call("DELETE", "sslcertkey", "nope")) == (
        599, 1540, "Certificate does not exist")

    status, bound = nitro.call("GET", "sslvserver_sslcertkey_binding", "vs-del")
    assert status == 200
    assert [b["certkeyname"] for b in bound["sslvserver_sslcertkey_binding"]] == ["le-del"]
    assert nitro.call("DELETE", "sslvserver_sslcertkey_binding", "vs-del",
                      query="args=certkeyname:le-del")[0] == 200
    assert "sslvserver_sslcertkey_binding" not in nitro.call(
        "GET", "sslvserver_sslcertkey_binding", "vs-del")[1]

    assert nitro.call("DELETE", "sslcertkey", "le-del",
                      query="args=deletefromdevice:true")[0] == 200
    files = nitro.call("GET", "systemfile", query="args=filelocation:%2Fnsconfig%2Fssl")[1]
    assert "le-del.crt" not in [f["filename"] for f in files["systemfile"]]
    assert nitro.call("DELETE", "sslcertkey", "le-del-ca")[0] == 200
    assert "le-del-ca.crt" in fake.files(SSL_DIR)


# --- TLS data plane ------------------------------------------------------------------------------

def served_chain(port: int, root: Issued) -> list[x509.Certificate]:
    """Connect like a browser that trusts only ``root``; return the chain the server sent."""
    context = ssl.create_default_context(cadata=root.pem.decode("ascii"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=HOST) as tls:
        getter = getattr(tls, "get_unverified_chain", None)  # public from Python 3.13
        if getter is not None:
            ders = list(getter())
        elif hasattr(tls._sslobj, "get_unverified_chain"):  # private in 3.10 - 3.12
            ders = [c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                    for c in tls._sslobj.get_unverified_chain()]  # type: ignore[union-attr]
        else:
            pytest.skip("reading the served chain needs Python >= 3.10")
    return [x509.load_der_x509_certificate(der) for der in ders]


@pytest.mark.parametrize("algo", ["rsa", "ec"])
def test_tls_plane_serves_bound_leaf_with_linked_chain_and_follows_updates(
        fake: Any, nitro: Nitro, algo: str, rsa_pki: Hierarchy, ec_pki: Hierarchy) -> None:
    pki = rsa_pki if algo == "rsa" else ec_pki
    leaf = make_leaf(pki.issuer, [HOST], algo=algo)
    nitro.add_certkey("le-tls", leaf)
    nitro.add_certkey("le-tls-ca", pki.issuer, with_key=False)
    nitro.call("POST", "sslcertkey", query="action=link",
               body={"certkey": "le-tls", "linkcertkeyname": "le-tls-ca"})
    fake.add_sslvserver("vs-tls")
    nitro.call("PUT", "sslvserver_sslcertkey_binding",
               body={"vservername": "vs-tls", "certkeyname": "le-tls"})

    chain = served_chain(fake.tls_port, pki.root)
    assert [c.serial_number for c in chain] == [leaf.cert.serial_number,
                                                pki.issuer.cert.serial_number]

    renewed = make_leaf(pki.issuer, [HOST], algo=algo)
    assert update(nitro, "le-tls", renewed, "2")[0] == 200
    assert served_chain(fake.tls_port, pki.root)[0].serial_number == renewed.cert.serial_number


def test_tls_plane_without_bound_certkey_closes_the_connection(fake: Any,
                                                               rsa_pki: Hierarchy) -> None:
    fake.add_sslvserver("vs-empty")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        served_chain(fake.tls_port, rsa_pki.root)


def test_ssl_vservers_bindings_sni_and_default_replacement(
        fake: Any, nitro: Nitro, ec_pki: Hierarchy, rsa_pki: Hierarchy) -> None:
    for name, pki, algo, host in (("le-a", ec_pki, "ec", HOST), ("le-b", ec_pki, "ec", "b.test"),
                                  ("le-r", rsa_pki, "rsa", HOST)):
        nitro.add_certkey(name, make_leaf(pki.issuer, [host], algo=algo))
    fake.add_sslvserver("vs-x")
    bind = "sslvserver_sslcertkey_binding"
    vs = nitro.call("GET", "sslvserver", "vs-x")[1]["sslvserver"][0]
    assert vs["snienable"] == "DISABLED" and "ipv46" not in vs
    lb = nitro.call("GET", "lbvserver", "vs-x")[1]["lbvserver"][0]
    assert (lb["servicetype"], lb["port"]) == ("SSL", fake.vserver_port("vs-x"))
    assert error(nitro.call("GET", bind, "nope"))[:2] == (599, 461)

    assert nitro.call("PUT", bind, body={"vservername": "vs-x", "certkeyname": "le-a"})[0] == 201
    status, body = nitro.call("PUT", bind, body={"vservername": "vs-x", "certkeyname": "le-b"})
    assert (status, body["errorcode"], body["severity"]) == (201, 1546, "WARNING")
    assert nitro.call("PUT", bind, body={"vservername": "vs-x", "certkeyname": "le-r"})[0] == 201
    assert fake.ssl_bindings("vs-x") == [("le-b", False), ("le-r", False)]  # one per key type
    assert nitro.call("PUT", bind, body={"vservername": "vs-x", "certkeyname": "le-a",
                                         "snicert": True})[0] == 201
    assert error(nitro.call("DELETE", bind, "vs-x", query="args=certkeyname:le-a"))[:2] == (
        599, 1542)  # le-a is bound with SNI only: the default binding does not exist
    assert nitro.call("DELETE", bind, "vs-x", query="args=certkeyname:le-a,snicert:true")[
        0] == 200
    rows = nitro.call("GET", bind, query="bulkbindings=yes")[1][bind]
    assert {(r["vservername"], r["certkeyname"], r["snicert"]) for r in rows} == {
        ("vs-x", "le-b", False), ("vs-x", "le-r", False)}


def test_tls_plane_picks_the_sni_certificate_for_the_client_name(
        fake: Any, nitro: Nitro, ec_pki: Hierarchy) -> None:
    nitro.add_certkey("le-ca", ec_pki.issuer, with_key=False)
    leaves = {}
    for name, hosts in (("le-d", ["default.test", HOST]), ("le-s", [HOST])):
        leaves[name] = make_leaf(ec_pki.issuer, hosts)
        nitro.add_certkey(name, leaves[name])
        nitro.call("POST", "sslcertkey", query="action=link",
                   body={"certkey": name, "linkcertkeyname": "le-ca"})
    fake.add_sslvserver("vs-sni")
    fake.bind_certkey("vs-sni", "le-d")
    fake.bind_certkey("vs-sni", "le-s", sni=True)
    port = fake.vserver_port("vs-sni")
    assert served_chain(port, ec_pki.root)[0] == leaves["le-d"].cert  # SNI still disabled
    assert nitro.call("PUT", "sslvserver", body={"vservername": "vs-sni",
                                                 "snienable": "ENABLED"})[0] == 200
    chain = served_chain(port, ec_pki.root)
    assert [c.serial_number for c in chain] == [leaves["le-s"].cert.serial_number,
                                                ec_pki.issuer.cert.serial_number]


# --- command policies see the CLI form, never secrets --------------------------------------------

def test_denied_commands_show_cli_form_without_file_content_or_pass_phrase(
        fake: Any, ec_pki: Hierarchy) -> None:
    fake.add_user("reader", "reader-pw", policies=[("ALLOW", r"^show .*")])
    leaf = make_leaf(ec_pki.issuer, [HOST])
    key_b64 = base64.b64encode(leaf.key_pem()).decode("ascii")
    with requests.Session() as session:
        session.headers.update({"X-NITRO-USER": "reader", "X-NITRO-PASS": "reader-pw"})
        base = f"{fake.http_url}/nitro/v1/config/"
        upload = session.post(base + "systemfile", timeout=10, json={"systemfile": {
            "filename": "le-x.key", "filelocation": "/nsconfig/ssl", "filecontent": key_b64}})
        add = session.post(base + "sslcertkey", timeout=10, json={"sslcertkey": {
            "certkey": "le-x", "cert": "le-x.crt", "key": "le-x.key", "passplain": "hush-hush"}})
        show = session.get(base + "sslcertkey", timeout=10)
    assert (upload.status_code, upload.json()["errorcode"]) == (403, 2138)
    assert upload.json()["message"] == ("Not authorized to execute this command "
                                        "[add system file le-x.key -fileLocation /nsconfig/ssl]")
    assert add.json()["message"] == (
        "Not authorized to execute this command "
        "[add ssl certKey le-x -cert le-x.crt -key le-x.key -password]")
    assert key_b64 not in upload.text and "hush-hush" not in add.text
    assert show.status_code == 200
