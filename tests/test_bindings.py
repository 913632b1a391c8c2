"""NS_BIND against the fake NetScaler: what each SSL vserver serves afterwards, what was written.

The proof is a TLS handshake with the vserver's own listener (its ipv46:port in NITRO), with
and without SNI, verified against the test root alone; the request log shows reads and writes.
"""

from __future__ import annotations

import logging
import socket
import ssl
from pathlib import Path
from typing import Any, Optional

import pytest
from cryptography import x509

from ns_letsencrypt import cli, reconcile
from ns_letsencrypt.errors import DeployError
from ns_letsencrypt.session import open_client
from tests import pki
from tests.conftest import PASSWORD, USER, fake_settings
from tests.test_deploy import Issuer, certkey, run

BIND_RESOURCE = "sslvserver_sslcertkey_binding"


def served_serial(fake: Any, vserver: str, root: pki.Issued,
                  hostname: Optional[str]) -> int:
    """Serial a client of ``vserver`` gets (SNI ``hostname``, or none), verified by ``root``."""
    context = ssl.create_default_context(cadata=root.pem.decode())
    if hostname is None:
        context.check_hostname = False
    with socket.create_connection(("127.0.0.1", fake.vserver_port(vserver)), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=hostname) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def binding_writes(fake: Any, since: int = 0) -> list[str]:
    return [f"{r.method} {r.name or ''}" for r in fake.requests[since:]
            if r.resource == BIND_RESOURCE and r.method != "GET"]


def hand_installed(fake: Any, tmp_path: Path, vserver: str, name: str = "admin-www",
                   algo: str = "ec") -> Issuer:
    """A certificate an admin installed and bound by hand (another CA), as the default."""
    admin = Issuer(tmp_path / "admin", tag="ADM", algo=algo)
    files = admin.issue(["www.example.com"])
    settings = fake_settings(fake)
    import base64

    with open_client(settings) as client:
        for kind in ("cert", "key", "chain"):
            client.add("systemfile", {"filename": f"{name}.{kind}",
                                      "filelocation": "/nsconfig/ssl", "fileencoding": "BASE64",
                                      "filecontent": base64.b64encode(
                                          files[kind].read_bytes()).decode()})
        client.add("sslcertkey", {"certkey": f"{name}-ca", "cert": f"{name}.chain"})
        client.add("sslcertkey", {"certkey": name, "cert": f"{name}.cert",
                                  "key": f"{name}.key"})
        client.action("sslcertkey", "link", {"certkey": name, "linkcertkeyname": f"{name}-ca"})
    fake.bind_certkey(vserver, name)
    return admin


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return Issuer(tmp_path)


@pytest.mark.parametrize("mode", ["warning", "error", "keep"])
def test_first_deploy_replaces_a_hand_installed_default(
        fake: Any, tmp_path: Path, issuer: Issuer, mode: str,
        caplog: pytest.LogCaptureFixture) -> None:
    fake.add_sslvserver("vs-www")
    fake.set_default_bind(mode)  # how the firmware answers a replacing bind (unconfirmed)
    admin = hand_installed(fake, tmp_path, "vs-www")
    assert served_serial(fake, "vs-www", admin.hierarchy.root, "www.example.com") == (
        admin.last.cert.serial_number)

    with caplog.at_level(logging.INFO, logger="ns_letsencrypt"):
        result = run(fake, issuer.issue(["www.example.com"]), "www.example.com",
                     bind={"www.example.com": ("vs-www",)})

    assert result.bound == ["vs-www"]
    assert fake.ssl_bindings("vs-www") == [("le-www.example.com", False)]
    assert served_serial(fake, "vs-www", issuer.hierarchy.root, "www.example.com") == (
        issuer.last.cert.serial_number)
    assert served_serial(fake, "vs-www", issuer.hierarchy.root, None) == (
        issuer.last.cert.serial_number)
    assert certkey(fake, "admin-www") is not None  # kept, unbound, named in the log
    assert "replacing admin-www" in caplog.text and "is kept" in caplog.text
    assert not fake.state.config_changed  # saved at the end of the run


def test_renewal_and_a_day_with_everything_bound_send_no_binding_write(
        fake: Any, issuer: Issuer) -> None:
    fake.add_sslvserver("vs-www")
    bind = {"www.example.com": ("vs-www",)}
    run(fake, issuer.issue(["www.example.com"]), "www.example.com", bind=bind)
    start = len(fake.requests)
    files = issuer.issue(["www.example.com"])
    renewed = run(fake, files, "www.example.com", bind=bind)
    assert renewed.action == "updated" and renewed.bindings_changed == []
    assert binding_writes(fake, start) == []
    assert served_serial(fake, "vs-www", issuer.hierarchy.root, "www.example.com") == (
        issuer.last.cert.serial_number)
    writes = len(fake.writes())
    again = run(fake, files, "www.example.com", bind=bind)  # everything in place already
    assert again.action == "unchanged" and not again.changed
    assert len(fake.writes()) == writes


def test_two_certificates_on_one_sni_vserver(fake: Any, issuer: Issuer) -> None:
    fake.add_sslvserver("cs-main", sni=True)
    bind = {"www.example.com": ("cs-main",), "shop": ("cs-main",)}
    www = run(fake, issuer.issue(["www.example.com"]), "www.example.com", bind=bind)
    www_serial = issuer.last.cert.serial_number
    shop = run(fake, issuer.issue(["shop.example.com"]), "shop.example.com", alias="shop",
               bind=bind)
    shop_serial = issuer.last.cert.serial_number
    assert www.bound == shop.bound == ["cs-main"]
    root = issuer.hierarchy.root
    assert served_serial(fake, "cs-main", root, "www.example.com") == www_serial
    assert served_serial(fake, "cs-main", root, "shop.example.com") == shop_serial
    assert served_serial(fake, "cs-main", root, None) == www_serial  # the default, for no SNI
    assert sorted(fake.ssl_bindings("cs-main")) == [
        ("le-shop", True), ("le-www.example.com", False), ("le-www.example.com", True)]


def test_sni_through_the_ssl_profile(fake: Any, issuer: Issuer) -> None:
    fake.add_sslprofile("prof-sni", sni=True)
    fake.add_sslvserver("vs-prof", sslprofile="prof-sni")
    run(fake, issuer.issue(["www.example.com"]), "www.example.com",
        bind={"www.example.com": ("vs-prof",)})
    assert ("le-www.example.com", True) in fake.ssl_bindings("vs-prof")


def test_bindings_removed_by_hand_come_back_with_a_warning(
        fake: Any, tmp_path: Path, issuer: Issuer, caplog: pytest.LogCaptureFixture) -> None:
    fake.add_sslvserver("vs-www")
    bind = {"www.example.com": ("vs-www",)}
    certs = tmp_path / "certs"
    leaf = pki.make_leaf(issuer.hierarchy.issuer, ["www.example.com"])
    pki.write_cert_dir(certs / "www.example.com", leaf, issuer.hierarchy)
    (tmp_path / "domains.txt").write_text("www.example.com\n")
    settings = fake_settings(fake, bind=bind)

    def reconcile_once() -> Any:
        with open_client(settings) as client:
            return reconcile.reconcile(client, settings, tmp_path / "domains.txt", certs)

    reconcile_once()
    with open_client(settings) as client:  # the admin unbinds by hand
        client.delete(BIND_RESOURCE, "vs-www", args={"certkeyname": "le-www.example.com"})
    with caplog.at_level(logging.WARNING, logger="ns_letsencrypt"):
        result = reconcile_once()
    assert result.changed and result.deployed[0].bindings_changed
    assert "bound certkey le-www.example.com to SSL vserver vs-www" in caplog.text
    assert fake.ssl_bindings("vs-www") == [("le-www.example.com", False)]
    start = len(fake.requests)
    reconcile_once()
    assert binding_writes(fake, start) == []
    gets = [r for r in fake.requests[start:] if r.resource == BIND_RESOURCE]
    assert len(gets) == 1  # each listed vserver is read once per run


def test_no_ns_bind_reads_no_vserver(fake: Any, issuer: Issuer) -> None:
    fake.add_sslvserver("vs-www")
    start = len(fake.requests)
    run(fake, issuer.issue(["www.example.com"]), "www.example.com")
    assert not [r for r in fake.requests[start:]
                if r.resource in (BIND_RESOURCE, "sslvserver", "sslprofile")]


def test_a_missing_vserver_at_deploy_time_keeps_the_certificate(fake: Any, issuer: Issuer) -> None:
    fake.add_sslvserver("vs-www")
    with pytest.raises(DeployError) as info:
        run(fake, issuer.issue(["www.example.com"]), "www.example.com",
            bind={"www.example.com": ("vs-gone", "vs-www")})
    assert info.value.step == "bind"
    assert "no SSL vserver named 'vs-gone'" in str(info.value)
    assert certkey(fake, "le-www.example.com") is not None
    assert fake.ssl_bindings("vs-www") == [("le-www.example.com", False)]  # the others: bound


# -- validation: `test` and startup_hook ---------------------------------------------------


def env_for(fake: Any, home: Path, bind: str) -> dict[str, str]:
    return {"NS_LE_HOME": str(home), "NS_URL": fake.url, "NS_USER": USER,
            "NS_PASSWORD": PASSWORD, "NS_TLS_PIN": fake.cert_sha256, "NS_VSERVER": "web",
            "NS_BIND": bind}


BAD = ("www.example.com=vs-www nosuch.example.com=vs-www2 shop=vs-gone,web "
       "other.example.com=vs-www")


def bad_setup(fake: Any, home: Path) -> None:
    fake.add_sslvserver("vs-www")
    fake.add_sslvserver("vs-www2")
    (home / "domains.txt").write_text("www.example.com\nshop.example.com > shop\n"
                                      "other.example.com\n")


@pytest.mark.parametrize("command", ["test", "startup"])
def test_every_bad_entry_is_one_line_and_nothing_is_written(
        fake: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], command: str) -> None:
    bad_setup(fake, tmp_path)
    for key, value in env_for(fake, tmp_path, BAD).items():
        monkeypatch.setenv(key, value)
    if command == "startup":
        monkeypatch.setenv("BASEDIR", str(tmp_path))
        status = cli.main(["hook", "startup_hook"])
    else:
        status = cli.main(["test"])
    out, err = capsys.readouterr()
    text = out + err
    assert status in (2, 6)
    assert "no domains.txt line has the first name or alias nosuch.example.com" in text
    assert "no SSL vserver named 'vs-gone'" in text
    assert "'web' is a HTTP lb vserver, not an SSL vserver" in text
    assert "both claim the default certificate of SSL vserver vs-www" in text
    assert sum(1 for line in text.splitlines() if "NS_BIND entr" in line) == 4
    assert fake.writes() == []


def test_restricted_policy_user_sees_the_same_problems(
        fake: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from ns_letsencrypt.config import load_settings
    from ns_letsencrypt.policy import Scope, command_regex

    bad_setup(fake, tmp_path)
    env = env_for(fake, tmp_path, BAD)
    scope = Scope.from_settings(load_settings(environ=env, install_dir=tmp_path))
    fake.add_user("le-api", "Le-api-pw-1", policies=[("ALLOW", command_regex(scope))])
    for key, value in {**env, "NS_USER": "le-api", "NS_PASSWORD": "Le-api-pw-1"}.items():
        monkeypatch.setenv(key, value)
    status = cli.main(["test"])
    out = capsys.readouterr().out
    assert status in (2, 6), out
    assert "2138" not in out and "Not authorized" not in out
    assert sum(1 for line in out.splitlines() if "NS_BIND entr" in line) == 4
    assert fake.writes() == []


def test_good_entries_pass_and_rsa_plus_ecdsa_may_share_a_default_slot(
        fake: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake.add_sslvserver("vs-www")
    fake.add_sslvserver("cs-main", sni=True)
    (tmp_path / "domains.txt").write_text("www.example.com > www-rsa\nwww.example.com > www-ec\n")
    for alias, algo in (("www-rsa", "rsa"), ("www-ec", "ec")):
        hierarchy = pki.make_hierarchy("K", algo=algo)
        leaf = pki.make_leaf(hierarchy.issuer, ["www.example.com"], algo=algo)
        pki.write_cert_dir(tmp_path / "certs" / alias, leaf, hierarchy)
    for key, value in env_for(fake, tmp_path, "www-rsa=vs-www,cs-main;www-ec=vs-www").items():
        monkeypatch.setenv(key, value)
    assert cli.main(["test"]) == 0
    out = capsys.readouterr().out
    assert "vs-www (default certificate)" in out and "cs-main (SNI)" in out


# -- status ----------------------------------------------------------------------------------


def test_status_shows_bindings_and_nagios_warns_on_an_unmet_entry(
        fake: Any, tmp_path: Path, issuer: Issuer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    fake.add_sslvserver("vs-www")
    fake.add_sslvserver("cs-main", sni=True)
    bind = {"www.example.com": ("vs-www", "cs-main")}
    run(fake, issuer.issue(["www.example.com"]), "www.example.com", bind=bind)
    for key, value in env_for(fake, tmp_path, "www.example.com=vs-www,cs-main").items():
        monkeypatch.setenv(key, value)

    assert cli.main(["status", "--json", "--certs-dir", "none"]) == 0
    row = json.loads(capsys.readouterr().out)["certificates"][0]
    assert row["bindings"] == ["cs-main (default)", "cs-main (SNI)", "vs-www (default)"]
    assert cli.main(["status", "--certs-dir", "none"]) == 0
    assert "bound to cs-main (default), cs-main (SNI), vs-www (default)" in (
        capsys.readouterr().out)

    fake.state.ext["ssl"].vservers["cs-main"].bindings = [
        b for b in fake.state.ext["ssl"].vservers["cs-main"].bindings if not b.snicert]
    assert cli.main(["status", "--nagios", "--certs-dir", "none"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("NS-LETSENCRYPT WARNING")
    assert "NS_BIND www.example.com=cs-main: not bound to cs-main as an SNI certificate" in out


def test_binding_as_the_restricted_policy_user(fake: Any, tmp_path: Path, issuer: Issuer) -> None:
    from ns_letsencrypt.config import load_settings
    from ns_letsencrypt.policy import Scope, command_regex

    fake.add_sslvserver("vs-www")
    hand_installed(fake, tmp_path, "vs-www")
    env = env_for(fake, tmp_path, "www.example.com=vs-www")
    scope = Scope.from_settings(load_settings(environ=env, install_dir=tmp_path))
    fake.add_user("le-api", "Le-api-pw-1", policies=[("ALLOW", command_regex(scope))])
    fake.set_default_bind("keep")  # the unbind of the old default is sent too
    result = run(fake, issuer.issue(["www.example.com"]), "www.example.com",
                 bind={"www.example.com": ("vs-www",)}, username="le-api",
                 password="Le-api-pw-1")
    assert result.bound == ["vs-www"]
    assert fake.ssl_bindings("vs-www") == [("le-www.example.com", False)]
    assert served_serial(fake, "vs-www", issuer.hierarchy.root, "www.example.com") == (
        issuer.last.cert.serial_number)


def test_an_entry_leaving_ns_bind_keeps_its_bindings_and_cleanup_lists_unbound_certkeys(
        fake: Any, tmp_path: Path, issuer: Issuer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake.add_sslvserver("vs-www")
    files = issuer.issue(["www.example.com"])
    run(fake, files, "www.example.com", bind={"www.example.com": ("vs-www",)})
    run(fake, issuer.issue(["spare.example.com"]), "spare.example.com")  # bound nowhere
    start = len(fake.requests)
    run(fake, files, "www.example.com")  # the entry is gone from NS_BIND
    assert binding_writes(fake, start) == []
    assert fake.ssl_bindings("vs-www") == [("le-www.example.com", False)]
    for key, value in env_for(fake, tmp_path, "").items():
        monkeypatch.setenv(key, value)
    assert cli.main(["cleanup"]) == 0
    out = capsys.readouterr().out
    assert "unbound certkey le-spare.example.com: bound to no vserver" in out
    assert "le-www.example.com" not in out


def test_no_binding_write_goes_to_an_ha_secondary(fake: Any, issuer: Issuer) -> None:
    from ns_letsencrypt.errors import ApplianceNotReady

    fake.add_sslvserver("vs-www")
    files = issuer.issue(["www.example.com"])
    bind = {"www.example.com": ("vs-www",)}
    run(fake, files, "www.example.com", bind=bind)
    fake.state.ext["ssl"].vservers["vs-www"].bindings.clear()  # lost, e.g. by hand
    fake.set_ha_state("Secondary")
    writes = len(fake.writes())
    with pytest.raises(ApplianceNotReady):
        run(fake, files, "www.example.com", bind=bind)
    assert len(fake.writes()) == writes


def test_a_default_of_the_other_key_type_stays(fake: Any, tmp_path: Path, issuer: Issuer) -> None:
    fake.add_sslvserver("vs-www")
    hand_installed(fake, tmp_path, "vs-www", algo="rsa")  # ours is ECDSA
    result = run(fake, issuer.issue(["www.example.com"]), "www.example.com",
                 bind={"www.example.com": ("vs-www",)})
    assert result.bound == ["vs-www"]
    assert fake.ssl_bindings("vs-www") == [("admin-www", False), ("le-www.example.com", False)]


def test_deploy_command_saves_the_certificate_when_only_a_binding_fails(
        fake: Any, tmp_path: Path, issuer: Issuer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    files = issuer.issue(["www.example.com"])
    for key, value in env_for(fake, tmp_path, "www.example.com=vs-gone").items():
        monkeypatch.setenv(key, value)
    status = cli.main(["deploy", str(files["cert"]), str(files["key"]), str(files["chain"])])
    err = capsys.readouterr().err
    assert status == 8 and "step 'bind'" in err and "no SSL vserver named 'vs-gone'" in err
    assert certkey(fake, "le-www.example.com") is not None
    assert not fake.state.config_changed  # saved
