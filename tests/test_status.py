"""`ns-letsencrypt status` against the fake NetScaler: rows, chain rule, local match, exit codes.

Certificates with chosen validity are built with `cryptography` (tests/pki.py) and installed
through NITRO the way an administrator or our deploy step would: upload, add, link.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Optional

import pytest
from cryptography.hazmat.primitives import serialization

from ns_letsencrypt import cli
from ns_letsencrypt.nitro import NitroClient
from tests.conftest import PASSWORD, USER, closed_port
from tests.pki import Hierarchy, Issued, make_hierarchy, make_leaf, write_cert_dir


def leaf_cert(issuer: Issued, names: list[str], days_left: float) -> Issued:
    """A leaf valid from 60 days ago until ``days_left`` days from now (negative: expired)."""
    return make_leaf(issuer, names, days=days_left + 1 / 24, issued_days_ago=60)


def upload(client: NitroClient, filename: str, data: bytes) -> None:
    client.add("systemfile", {"filename": filename, "filelocation": "/nsconfig/ssl",
                              "filecontent": base64.b64encode(data).decode(),
                              "fileencoding": "BASE64"})


def add_ca(client: NitroClient, name: str, ca: Issued, link: Optional[str] = None) -> None:
    upload(client, f"{name}.crt", ca.pem)
    client.add("sslcertkey", {"certkey": name, "cert": f"{name}.crt", "inform": "PEM"})
    if link:
        client.action("sslcertkey", "link", {"certkey": name, "linkcertkeyname": link})


def add_leaf(client: NitroClient, name: str, leaf: Issued, link: Optional[str]) -> None:
    upload(client, f"{name}.crt", leaf.pem)
    upload(client, f"{name}.key",
           leaf.key_pem(serialization.PrivateFormat.TraditionalOpenSSL))
    client.add("sslcertkey", {"certkey": name, "cert": f"{name}.crt", "key": f"{name}.key",
                              "inform": "PEM"})
    if link:
        client.action("sslcertkey", "link", {"certkey": name, "linkcertkeyname": link})


@pytest.fixture
def client(fake: Any) -> Any:
    with NitroClient(fake.url, USER, PASSWORD, pin=fake.cert_sha256) as nitro:
        yield nitro


@pytest.fixture
def pki() -> Hierarchy:
    return make_hierarchy("S", length=1)


@pytest.fixture
def home(fake_env: Path) -> Path:
    return fake_env


def status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["status", *args])
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err
    return code, out, err


def install_good(client: NitroClient, pki: Hierarchy, name: str = "le-www.example.test",
                 days: float = 60) -> Issued:
    add_ca(client, "le-int-s", pki.issuer)
    leaf = leaf_cert(pki.issuer, ["www.example.test", "example.test"], days)
    add_leaf(client, name, leaf, "le-int-s")
    return leaf


def test_valid_certificate_is_ok_with_complete_chain(client: Any, pki: Hierarchy, home: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    leaf = install_good(client, pki)

    code, out, _ = status(capsys)

    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("le-www.example.test"))
    assert "www.example.test,example.test" in row
    assert "Test Intermediate S1" in row
    assert format(leaf.cert.serial_number, "X") in row
    assert " 60 " in row and "complete" in row and row.endswith("OK")
    assert "le-int-s" not in out.split("le-www.example.test", 1)[0]  # intermediates: no row


@pytest.mark.parametrize(("days", "code", "state"), [(20, 1, "WARNING"), (5, 2, "CRITICAL"),
                                                     (-3, 2, "CRITICAL")])
def test_expiry_thresholds(client: Any, pki: Hierarchy, home: Path, days: int, code: int,
                           state: str, capsys: pytest.CaptureFixture[str]) -> None:
    install_good(client, pki, days=days)

    got, out, _ = status(capsys, "--nagios")

    assert got == code
    first = out.splitlines()[0]
    assert first.startswith(f"NS-LETSENCRYPT {state} - le-www.example.test ")
    assert ("expired 3 days ago" if days < 0 else f"expires in {days} days") in first


def test_custom_thresholds(client: Any, pki: Hierarchy, home: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    install_good(client, pki, days=20)

    assert status(capsys, "--warn", "15", "--crit", "5")[0] == 0
    assert status(capsys, "--warn", "40", "--crit", "25")[0] == 2


def test_unlinked_leaf_is_critical(client: Any, pki: Hierarchy, home: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    add_ca(client, "le-int-s", pki.issuer)
    add_leaf(client, "le-www.example.test", leaf_cert(pki.issuer, ["www.example.test"], 60), None)

    code, out, _ = status(capsys)

    assert code == 2
    assert "BROKEN" in out
    assert "chain broken: not linked to its issuer" in out


def test_installed_but_unlinked_root_is_broken(client: Any, home: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    pki = make_hierarchy("R", length=2)
    add_ca(client, "le-root-r", pki.root)
    add_ca(client, "le-int-r2", pki.intermediates[1])  # not linked to the installed root
    add_ca(client, "le-int-r1", pki.intermediates[0], link="le-int-r2")
    add_leaf(client, "le-www.example.test", leaf_cert(pki.issuer, ["www.example.test"], 60),
             "le-int-r1")

    code, out, _ = status(capsys, "--json")

    assert code == 2
    report = json.loads(out)
    (row,) = report["certificates"]
    assert row["chain"] == ["le-int-r1", "le-int-r2"]
    assert row["chain_linked"] is True and row["chain_complete"] is False
    assert row["chain_problem"] == "le-int-r2 is not linked to its issuer le-root-r"


def test_chain_ending_at_an_installed_root_is_complete(client: Any, home: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    pki = make_hierarchy("T", length=1)
    add_ca(client, "le-root-t", pki.root)
    add_ca(client, "le-int-t", pki.issuer, link="le-root-t")
    add_leaf(client, "le-a.example.test", leaf_cert(pki.issuer, ["a.example.test"], 60),
             "le-int-t")

    code, out, _ = status(capsys, "--json")

    assert code == 0
    assert json.loads(out)["certificates"][0]["chain"] == ["le-int-t", "le-root-t"]


def test_json_and_only_one_list_call(client: Any, fake: Any, pki: Hierarchy, home: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    install_good(client, pki)
    add_leaf(client, "le-b.example.test", leaf_cert(pki.issuer, ["b.example.test"], 45),
             "le-int-s")
    add_leaf(client, "other-cert", leaf_cert(pki.issuer, ["other.example.test"], 1), None)
    before = len(fake.requests)

    code, out, _ = status(capsys, "--json")

    report = json.loads(out)
    assert code == 0 and report["state"] == "OK" and report["exit_status"] == 0
    assert [c["certkey"] for c in report["certificates"]] == ["le-b.example.test",
                                                              "le-www.example.test"]
    assert report["certificates"][0]["days"] == 45
    gets = [r for r in fake.requests[before:] if r.method == "GET"]
    # every certkey, every SSL vserver binding (bulkbindings) for the BOUND lines, and
    # whether the appliance is an HA pair (nsconfig's systemtype)
    assert [r.resource for r in gets] == ["sslcertkey", "sslvserver_sslcertkey_binding",
                                          "nsconfig"]


def test_nagios_summary_and_perfdata(client: Any, pki: Hierarchy, home: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    install_good(client, pki, days=58)

    code, out, _ = status(capsys, "--nagios")

    assert code == 0
    assert out.splitlines()[0] == (
        "NS-LETSENCRYPT OK - 1 certificate, nearest expiry 58 days (le-www.example.test)"
        " | certificates=1 'le-www.example.test'=58;30:;10:")


def test_local_certificate_match_differs_and_missing(
        client: Any, pki: Hierarchy, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    leaf = install_good(client, pki)
    certs = home / "certs"
    write_cert_dir(certs / "www.example.test", leaf, pki)
    write_cert_dir(certs / "new.example.test",
                   leaf_cert(pki.issuer, ["new.example.test"], 89), pki)

    code, out, _ = status(capsys)

    assert code == 1
    assert "match" in next(line for line in out.splitlines()
                           if line.startswith("le-www.example.test"))
    assert "MISSING" in next(line for line in out.splitlines()
                             if line.startswith("le-new.example.test"))

    write_cert_dir(certs / "www.example.test",
                   leaf_cert(pki.issuer, ["www.example.test"], 89), pki)
    (certs / "new.example.test" / "cert.pem").unlink()
    code, out, _ = status(capsys)
    assert code == 1
    assert "DIFFERS" in out and "local cert.pem has" in out


def test_unreachable_appliance_is_unknown(home: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NS_URL", f"https://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NS_RETRIES", "0")

    code, out, _ = status(capsys, "--nagios")

    assert code == 3
    assert out.startswith("NS-LETSENCRYPT UNKNOWN - ")
    assert "connection refused" in out


def test_missing_configuration_is_unknown(home: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("NS_URL")

    code, out, err = status(capsys)

    assert code == 3 and out == ""
    assert "UNKNOWN" in err and "NS_URL" in err
