"""Certificate deployment and reconciliation against the fake NetScaler.

Every test asserts what the appliance holds afterwards (certkeys, links, files) and, where it
matters, what a TLS client receives from the fake's SSL data plane, verified against the test
root: the real proof that the chain is complete.
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
from pathlib import Path
from typing import Any, Optional

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ns_letsencrypt import appliance, deploy, reconcile
from ns_letsencrypt.errors import ConfigError, DeployError, InputError
from ns_letsencrypt.session import open_client
from tests import pki
from tests.conftest import fake_settings

VSERVER = "vs-ssl"


# -- helpers --------------------------------------------------------------------------------


class Issuer:
    """Issues dehydrated-style cert directories from one test hierarchy."""

    def __init__(self, tmp: Path, tag: str = "A", length: int = 1, algo: str = "ec",
                 ca_days: float = 3650) -> None:
        self.tmp = tmp
        self.algo = algo
        self.hierarchy = pki.make_hierarchy(tag, length=length, algo=algo, days=ca_days)
        self.count = 0

    def issue(self, names: list[str], key: Optional[pki.Key] = None,
              ec_parameters: bool = False, directory: Optional[str] = None) -> dict[str, Path]:
        self.count += 1
        leaf = pki.make_leaf(self.hierarchy.issuer, names, algo=self.algo, key=key)
        where = self.tmp / f"{directory or names[0]}-{self.count}"
        files = pki.write_cert_dir(where, leaf, self.hierarchy, ec_parameters=ec_parameters)
        files["leaf"] = where  # type: ignore[assignment]
        self.last = leaf
        return files


def run(fake: Any, files: dict[str, Path], domain: str, alias: Optional[str] = None,
        **overrides: Any) -> deploy.DeployResult:
    """One hook run: deploy one certificate, then save once."""
    settings = fake_settings(fake, **overrides)
    with open_client(settings) as client:
        result = deploy.deploy_cert(client, settings, domain, str(files["key"]),
                                    str(files["cert"]), str(files["chain"]), alias)
        appliance.finish_run(client, settings, result.changed)
    return result


def certkey(fake: Any, name: str) -> Optional[dict[str, Any]]:
    return next((c for c in fake.certkeys() if c["certkey"] == name), None)


def serial_of(issued: pki.Issued) -> str:
    """The serial as NITRO shows it: upper-case hex, padded to whole bytes."""
    text = format(issued.cert.serial_number, "X")
    return text.zfill(len(text) + len(text) % 2)


def served(fake: Any, root: pki.Issued, hostname: str) -> str:
    """Serial the SSL data plane serves for ``hostname``, verified against ``root`` alone.

    The client knows only the root, so the handshake succeeds only when the appliance sends
    every intermediate: a verified handshake proves the chain is complete.
    """
    context = ssl.create_default_context(cadata=root.pem.decode())
    with socket.create_connection(("127.0.0.1", fake.tls_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=hostname) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    text = format(x509.load_der_x509_certificate(der).serial_number, "X")
    return text.zfill(len(text) + len(text) % 2)


def bind(fake: Any, name: str, vserver: str = VSERVER) -> None:
    fake.add_sslvserver(vserver)
    fake.bind_certkey(vserver, name)


def our_files(fake: Any) -> set[str]:
    return {n for n in fake.files() if n.startswith("le-")}


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return Issuer(tmp_path)


# -- first deploy and renewal ------------------------------------------------------------------


def test_first_deploy_adds_certkey_chain_and_link(fake, issuer):
    files = issuer.issue(["www.example.com", "example.com"])
    result = run(fake, files, "www.example.com")

    assert result.action == "added" and result.certkey == "le-www.example.com"
    leaf = certkey(fake, "le-www.example.com")
    assert leaf is not None and leaf["serial"] == serial_of(issuer.last)
    assert leaf["expirymonitor"] == "ENABLED" and int(leaf["notificationperiod"]) > 0
    ca = certkey(fake, leaf["linkcertkeyname"])
    assert ca is not None and "Test Intermediate A1" in ca["subject"] and "key" not in ca
    assert len(result.chain) == 1 and len(result.chain[0]) <= 31
    assert not fake.state.config_changed  # saved once at the end
    bind(fake, "le-www.example.com")
    assert served(fake, issuer.hierarchy.root, "www.example.com") == serial_of(issuer.last)


def test_renewal_updates_in_place_keeps_binding_and_rotates_key(fake, issuer):
    run(fake, issuer.issue(["www.example.com"]), "www.example.com")
    bind(fake, "le-www.example.com")
    before = our_files(fake)
    start = len(fake.requests)

    result = run(fake, issuer.issue(["www.example.com"]), "www.example.com")

    assert result.action == "updated"
    assert served(fake, issuer.hierarchy.root, "www.example.com") == serial_of(issuer.last)
    after = our_files(fake)
    assert len(after) == len(before) and after != before  # new cert + key, old ones deleted
    leaf = certkey(fake, "le-www.example.com")
    assert leaf is not None and leaf["cert"] in after and leaf["key"] in after
    assert len(fake.requests) - start <= 12  # including login, save and logout


def test_renewal_with_the_same_key_uploads_only_the_certificate(fake, issuer):
    key = pki.new_key("ec")
    run(fake, issuer.issue(["www.example.com"], key=key), "www.example.com")
    start = len(fake.requests)
    run(fake, issuer.issue(["www.example.com"], key=key), "www.example.com")
    uploads = [r for r in fake.requests[start:] if r.method == "POST" and r.resource ==
               "systemfile"]
    assert len(uploads) == 1 and uploads[0].body["systemfile"]["filename"].endswith(".crt")


def test_same_certificate_again_changes_nothing(fake, issuer):
    files = issuer.issue(["www.example.com"])
    run(fake, files, "www.example.com")
    start = len(fake.writes())
    assert run(fake, files, "www.example.com").action == "unchanged"
    assert fake.writes()[start:] == []


def test_rsa_key_and_names_changed_use_nodomaincheck(fake, tmp_path):
    issuer = Issuer(tmp_path, algo="rsa")
    run(fake, issuer.issue(["shop.example.com"]), "shop.example.com")
    result = run(fake, issuer.issue(["shop.example.com", "extra.example.com"]),
                 "shop.example.com")
    assert result.action == "updated"
    leaf = certkey(fake, "le-shop.example.com")
    assert leaf is not None and leaf["serial"] == serial_of(issuer.last)


# -- chains ------------------------------------------------------------------------------------


def test_two_intermediates_become_two_linked_ca_certkeys(fake, tmp_path):
    issuer = Issuer(tmp_path, tag="G", length=2)
    files = issuer.issue(["www.example.com"])
    files["chain"].write_bytes(issuer.hierarchy.chain_pem(with_root=True))  # root is dropped
    result = run(fake, files, "www.example.com")

    first, second = result.chain
    assert certkey(fake, "le-www.example.com")["linkcertkeyname"] == first
    assert certkey(fake, first)["linkcertkeyname"] == second
    assert "Test Intermediate G1" in certkey(fake, first)["subject"]
    assert "Test Intermediate G2" in certkey(fake, second)["subject"]
    assert not any("Test Root" in c["subject"] for c in fake.certkeys())
    bind(fake, "le-www.example.com")
    assert served(fake, issuer.hierarchy.root, "www.example.com") == serial_of(issuer.last)


def _install_foreign_ca(fake: Any, issuer: Issuer, name: str) -> None:
    settings = fake_settings(fake)
    with open_client(settings) as client:
        content = issuer.hierarchy.issuer.pem
        import base64
        client.add("systemfile", {"filename": f"{name}.pem", "filelocation": "/nsconfig/ssl",
                                  "filecontent": base64.b64encode(content).decode()})
        client.add("sslcertkey", {"certkey": name, "cert": f"{name}.pem"})


def test_existing_intermediate_under_a_foreign_name_is_reused(fake, issuer):
    _install_foreign_ca(fake, issuer, "R11-admin")
    result = run(fake, issuer.issue(["www.example.com"]), "www.example.com")
    assert result.chain == ["R11-admin"]
    assert certkey(fake, "le-www.example.com")["linkcertkeyname"] == "R11-admin"
    assert not [c for c in fake.certkeys() if c["certkey"].startswith("le-Test")]


def test_duplicate_contents_answer_273_is_reused(fake, issuer):
    """The intermediate appears after we listed the certkeys: NITRO's 273 names the owner."""
    settings = fake_settings(fake)
    files = issuer.issue(["www.example.com"])
    with open_client(settings) as client:
        deployer = deploy.Deployer(client, settings)
        assert deployer.inventory  # listed now, before the foreign certkey exists
        _install_foreign_ca(fake, issuer, "R11-late")
        bundle = deploy.load_bundle(str(files["key"]), str(files["cert"]), str(files["chain"]),
                                    "www.example.com")
        result = deployer.deploy(bundle)
    assert result.chain == ["R11-late"]
    assert certkey(fake, "le-www.example.com")["linkcertkeyname"] == "R11-late"
    assert our_files(fake) == {certkey(fake, "le-www.example.com")[k] for k in ("cert", "key")}


def test_issuer_change_relinks_and_keeps_the_old_ca_while_it_is_valid(fake, tmp_path):
    old = Issuer(tmp_path / "old", tag="O")
    new = Issuer(tmp_path / "new", tag="N")
    run(fake, old.issue(["a.example.com"]), "a.example.com")
    run(fake, old.issue(["b.example.com"]), "b.example.com")
    bind(fake, "le-a.example.com")
    old_ca = certkey(fake, "le-a.example.com")["linkcertkeyname"]

    result = run(fake, new.issue(["a.example.com"]), "a.example.com")
    new_ca = result.chain[0]
    assert new_ca != old_ca and certkey(fake, "le-a.example.com")["linkcertkeyname"] == new_ca
    assert served(fake, new.hierarchy.root, "a.example.com") == serial_of(new.last)

    result = run(fake, new.issue(["b.example.com"]), "b.example.com")
    # nothing links to it any more, but it is valid: a later renewal may be issued from it
    assert not [c for c in fake.certkeys() if c.get("linkcertkeyname") == old_ca]
    kept = certkey(fake, old_ca)
    assert kept is not None and old_ca not in result.removed
    assert kept["cert"] in fake.files()  # its file stays with it
    assert not {certkey(fake, "le-b.example.com")["cert"]} & set(result.removed)

    result = run(fake, old.issue(["a.example.com"]), "a.example.com")  # back to it
    assert result.chain == [old_ca]
    assert served(fake, old.hierarchy.root, "a.example.com") == serial_of(old.last)


def test_expired_unreferenced_cas_of_ours_are_removed_with_their_files(fake, tmp_path):
    old = Issuer(tmp_path / "old", tag="X", length=2, ca_days=-2)  # both intermediates expired
    new = Issuer(tmp_path / "new", tag="N")
    run(fake, old.issue(["a.example.com"]), "a.example.com")
    run(fake, old.issue(["b.example.com"]), "b.example.com")
    bind(fake, "le-b.example.com")
    old_cas = [certkey(fake, "le-a.example.com")["linkcertkeyname"]]
    old_cas.append(certkey(fake, old_cas[0])["linkcertkeyname"])
    old_files = {certkey(fake, ca)["cert"] for ca in old_cas}

    result = run(fake, new.issue(["a.example.com"]), "a.example.com")
    assert all(certkey(fake, ca) is not None for ca in old_cas)  # b still links to them
    assert not set(old_cas) & set(result.removed)

    result = run(fake, new.issue(["b.example.com"]), "b.example.com")
    assert all(certkey(fake, ca) is None for ca in old_cas)  # expired and unreferenced
    assert set(old_cas) <= set(result.removed) and old_files <= set(result.removed)
    assert not old_files & set(fake.files())
    assert served(fake, new.hierarchy.root, "b.example.com") == serial_of(new.last)


def test_expired_ca_that_is_not_ours_is_left_alone(fake, tmp_path):
    old = Issuer(tmp_path / "old", tag="F", ca_days=-2)
    new = Issuer(tmp_path / "new", tag="N")
    _install_foreign_ca(fake, old, "FOREIGN-CA")
    run(fake, old.issue(["a.example.com"]), "a.example.com")
    assert certkey(fake, "le-a.example.com")["linkcertkeyname"] == "FOREIGN-CA"  # reused

    run(fake, new.issue(["a.example.com"]), "a.example.com")
    assert certkey(fake, "FOREIGN-CA") is not None and "FOREIGN-CA.pem" in fake.files()


# -- names ---------------------------------------------------------------------------------------


def test_same_first_label_in_two_domains_gets_two_certkeys(fake, issuer):
    com = run(fake, issuer.issue(["www.example.com"]), "www.example.com")
    org = run(fake, issuer.issue(["www.example.org"]), "www.example.org")
    assert com.certkey != org.certkey
    assert certkey(fake, com.certkey)["subject"] != certkey(fake, org.certkey)["subject"]


def test_long_names_stay_within_limits_and_distinct(fake, issuer):
    a = "a-very-long-host-name-for-testing.department.example.com"
    b = "a-very-long-host-name-for-testing.department.example.org"
    ra = run(fake, issuer.issue([a]), a)
    rb = run(fake, issuer.issue([b]), b)
    assert ra.certkey != rb.certkey and max(len(ra.certkey), len(rb.certkey)) <= 31
    assert all(len(name) <= 63 for name in fake.files())


def test_alias_names_the_certkey(fake, issuer):
    result = run(fake, issuer.issue(["www.example.com"]), "www.example.com", alias="shop")
    assert result.certkey == "le-shop" and certkey(fake, "le-shop") is not None


def test_name_override_adopts_the_original_tools_certkey(fake, issuer):
    first = issuer.issue(["www.example.com"])
    settings = fake_settings(fake)
    with open_client(settings) as client:  # what the original tool left behind
        import base64
        for name, path in (("le-www.cert", first["cert"]), ("le-www.key", first["key"])):
            client.add("systemfile", {"filename": name, "filelocation": "/nsconfig/ssl",
                                      "filecontent": base64.b64encode(path.read_bytes()).decode()})
        client.add("sslcertkey", {"certkey": "le-server-www", "cert": "le-www.cert",
                                  "key": "le-www.key"})
    bind(fake, "le-server-www")

    result = run(fake, issuer.issue(["www.example.com"]), "www.example.com",
                 certkey_names={"www.example.com": "le-server-www"})
    assert result.certkey == "le-server-www" and result.action == "updated"
    assert certkey(fake, "le-www.example.com") is None
    assert "le-www.cert" not in fake.files()  # superseded and unreferenced
    assert served(fake, issuer.hierarchy.root, "www.example.com") == serial_of(issuer.last)


# -- failures and rollback -----------------------------------------------------------------------

STEPS = {
    # step: inject(...) arguments; "link" needs an issuer change to have a link step
    "upload": dict(method="POST", resource="systemfile", action=None),
    "update": dict(method="POST", resource="sslcertkey", action="update"),
    "link": dict(method="POST", resource="sslcertkey", action="link"),
    "verify": dict(method="GET", resource="sslcertkey", name="le-www.example.com"),
}


@pytest.mark.parametrize("kind", ["error", "reset"])
@pytest.mark.parametrize("step", list(STEPS))
def test_failed_step_keeps_the_old_certificate_serving_and_next_run_converges(
        fake, tmp_path, step, kind):
    old = Issuer(tmp_path / "old", tag="O")
    new = Issuer(tmp_path / "new", tag="N") if step == "link" else old
    run(fake, old.issue(["www.example.com"]), "www.example.com")
    bind(fake, "le-www.example.com")
    old_serial = serial_of(old.last)
    files_before = set(fake.files())
    renewal = new.issue(["www.example.com"])

    # a GET is retried after a reset (it is idempotent): make every attempt fail
    times = 3 if (kind, step) == ("reset", "verify") else 1
    fake.inject(**STEPS[step], kind=kind, status=599, errorcode=1538, times=times,
                message="Certificate and private key do not match")
    with pytest.raises(DeployError) as info:
        run(fake, renewal, "www.example.com")

    assert info.value.step == step
    assert "www.example.com" in str(info.value)
    assert certkey(fake, "le-www.example.com")["serial"] == old_serial
    assert served(fake, old.hierarchy.root, "www.example.com") == old_serial
    assert set(fake.files()) == files_before  # new files removed again
    assert run(fake, renewal, "www.example.com").action == "updated"
    assert served(fake, new.hierarchy.root, "www.example.com") == serial_of(new.last)


def test_failed_first_deploy_leaves_nothing_behind(fake, issuer):
    fake.inject(method="POST", resource="sslcertkey", action="link", kind="error", status=599,
                errorcode=1548, message="Issuer certificate mismatch")
    with pytest.raises(DeployError) as info:
        run(fake, issuer.issue(["www.example.com"]), "www.example.com")
    assert info.value.step == "link"
    assert [c["certkey"] for c in fake.certkeys()] == ["ns-server-certificate"]
    assert our_files(fake) == set()


# -- inputs rejected before anything is sent -----------------------------------------------------


def test_ec_parameters_key_is_uploaded_without_them(fake, issuer):
    files = issuer.issue(["www.example.com"], ec_parameters=True)
    run(fake, files, "www.example.com")
    key_file = certkey(fake, "le-www.example.com")["key"]
    assert fake.files()[key_file].startswith(b"-----BEGIN EC PRIVATE KEY-----")


def test_mismatched_key_is_rejected_with_zero_writes(fake, issuer):
    files = issuer.issue(["www.example.com"])
    other = issuer.issue(["www.example.com"])
    files["key"] = other["key"]
    with pytest.raises(InputError, match="not the private key"):
        run(fake, files, "www.example.com")
    assert fake.writes() == []


def test_encrypted_key_is_rejected_with_zero_writes(fake, issuer):
    files = issuer.issue(["www.example.com"])
    files["key"].write_bytes(issuer.last.key_pem(password=b"hunter22"))
    with pytest.raises(InputError, match="encrypted"):
        run(fake, files, "www.example.com")
    assert fake.writes() == []


def test_private_key_over_plain_http_needs_the_opt_in(fake, issuer):
    files = issuer.issue(["www.example.com"])
    with pytest.raises(ConfigError, match="plain HTTP"):
        run(fake, files, "www.example.com", url=fake.http_url, tls_pin=None)
    assert fake.writes() == []
    result = run(fake, files, "www.example.com", url=fake.http_url, tls_pin=None,
                 allow_key_over_http=True)
    assert result.action == "added"


def test_plain_http_repair_without_a_key_needs_no_opt_in(fake, issuer):
    files = issuer.issue(["www.example.com"])
    run(fake, files, "www.example.com")
    settings = fake_settings(fake)
    with open_client(settings) as client:
        client.action("sslcertkey", "unlink", {"certkey": "le-www.example.com"})
    assert run(fake, files, "www.example.com", url=fake.http_url, tls_pin=None).action == \
        "repaired"
    assert certkey(fake, "le-www.example.com").get("linkcertkeyname")


# -- run-level behaviour ---------------------------------------------------------------------------


def test_unsaved_changes_before_the_run_are_reported(fake, issuer, caplog):
    fake.state.config_changed = True
    with caplog.at_level(logging.WARNING, logger="ns_letsencrypt"):
        run(fake, issuer.issue(["www.example.com"]), "www.example.com")
    assert "unsaved configuration changes before this run" in caplog.text


@pytest.mark.parametrize(("mode", "changed", "saves"), [
    ("changed", True, 1), ("changed", False, 0), ("always", False, 1), ("never", True, 0)])
def test_finish_run_saves_per_setting(fake, mode, changed, saves):
    settings = fake_settings(fake, save_config=mode)
    with open_client(settings) as client:
        appliance.finish_run(client, settings, changed)
    assert len([r for r in fake.requests if r.resource == "nsconfig" and r.action == "save"]) \
        == saves


def test_ha_pair_syncs_files_before_the_certkey_is_added(issuer):
    from tests.conftest import PASSWORD, USER
    from tests.fakens import FakeNetScaler

    with FakeNetScaler(users={USER: PASSWORD}, ha_peer=True) as fake:
        run(fake, issuer.issue(["www.example.com"]), "www.example.com")
        order = [(r.resource, r.action) for r in fake.writes()]
    assert ("hafiles", "sync") in order
    assert order.index(("hafiles", "sync")) < order.index(("sslcertkey", None))


def test_link_refused_because_the_firmware_linked_it_already_is_fine(fake, issuer):
    """The firmware linked the new certkey itself and refuses our link with some errorcode."""
    fake.inject(method="POST", resource="sslcertkey", action="link", kind="error", status=599,
                errorcode=1591, message="Certificate is already linked", after=True)
    result = run(fake, issuer.issue(["www.example.com"]), "www.example.com")
    assert result.action == "added"
    leaf = certkey(fake, "le-www.example.com")
    assert leaf is not None and leaf.get("linkcertkeyname") == result.chain[0]
    bind(fake, "le-www.example.com")
    assert served(fake, issuer.hierarchy.root, "www.example.com") == serial_of(issuer.last)


def test_ha_secondary_gets_no_write_at_all(issuer):
    """A secondary may accept writes and lose them at the next sync: none is sent."""
    from ns_letsencrypt.errors import ApplianceNotReady
    from tests.conftest import PASSWORD, USER
    from tests.fakens import FakeNetScaler

    with FakeNetScaler(users={USER: PASSWORD}, ha_peer=True, ha_state="Secondary") as fake:
        with pytest.raises(ApplianceNotReady) as info:
            run(fake, issuer.issue(["www.example.com"]), "www.example.com")
        assert fake.writes() == []
    assert "HA secondary" in str(info.value) and "primary" in (info.value.hint or "")


# -- reconciliation --------------------------------------------------------------------------------


def _dehydrated_tree(tmp: Path, issuer: Issuer, lines: list[str],
                     not_issued: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """BASEDIR with domains.txt and certs/<name>/ for every line (comments kept)."""
    base = tmp / "dh"
    (base / "certs").mkdir(parents=True)
    (base / "domains.txt").write_text("\n".join(lines) + "\n")
    for line in reconcile.parse_domains(base / "domains.txt"):
        if line.cert_name in not_issued:
            continue
        files = issuer.issue(list(line.names), directory=line.cert_name)
        target = base / "certs" / line.cert_name
        files["leaf"].rename(target)  # type: ignore[union-attr]
    return base / "domains.txt", base / "certs"


def test_parse_domains_like_dehydrated(tmp_path):
    path = tmp_path / "domains.txt"
    path.write_text("# comment\n\n  WWW.Example.com   example.com\nshop.example.org>Shop\n"
                    "*.example.net example.net > wild\r\n")
    lines = reconcile.parse_domains(path)
    assert [(line.names, line.cert_name) for line in lines] == [
        (("www.example.com", "example.com"), "www.example.com"),
        (("shop.example.org",), "shop"),
        (("*.example.net", "example.net"), "wild"),
    ]


def test_reconcile_redeploys_what_the_appliance_lacks(fake, issuer, tmp_path):
    domains, certs_dir = _dehydrated_tree(tmp_path, issuer, [
        "# managed", "a.example.com", "b.example.com www.b.example.com > bee", "",
        "never-issued.example.com"], not_issued=("never-issued.example.com",))
    settings = fake_settings(fake)
    with open_client(settings) as client:
        first = reconcile.reconcile(client, settings, domains, certs_dir)
    assert sorted(r.certkey for r in first.deployed) == ["le-a.example.com", "le-bee"]
    assert first.missing == ["never-issued.example.com"]

    # an admin deletes a certkey and a file by hand
    with open_client(settings) as client:
        client.delete("sslcertkey", "le-a.example.com")
        client.delete("systemfile", certkey(fake, "le-bee")["cert"],
                      args={"filelocation": "/nsconfig/ssl"})
        second = reconcile.reconcile(client, settings, domains, certs_dir)
    assert sorted(r.certkey for r in second.deployed) == ["le-a.example.com", "le-bee"]
    assert certkey(fake, "le-bee")["cert"] in fake.files()
    assert certkey(fake, "le-a.example.com") is not None


def test_noop_reconciliation_of_many_certificates_uses_list_calls(fake, issuer, tmp_path):
    names = [f"host{i}.example.com" for i in range(12)]
    domains, certs_dir = _dehydrated_tree(tmp_path, issuer, names)
    settings = fake_settings(fake)
    with open_client(settings) as client:
        reconcile.reconcile(client, settings, domains, certs_dir)
    start = len(fake.requests)
    with open_client(settings) as client:
        result = reconcile.reconcile(client, settings, domains, certs_dir)
        appliance.finish_run(client, settings, result.changed)
    assert len(result.checked) == 12 and result.deployed == [] and not result.changed
    assert len(fake.requests) - start <= 5


def test_one_bad_certificate_does_not_stop_the_others(fake, issuer, tmp_path):
    domains, certs_dir = _dehydrated_tree(tmp_path, issuer, ["a.example.com", "b.example.com"])
    (certs_dir / "a.example.com" / "chain.pem").write_text("garbage\n")
    settings = fake_settings(fake)
    with open_client(settings) as client:
        result = reconcile.reconcile(client, settings, domains, certs_dir)
    assert [r.certkey for r in result.deployed] == ["le-b.example.com"]
    assert [name for name, _ in result.failures] == ["a.example.com"]
    with pytest.raises(DeployError, match=r"a\.example\.com"):
        result.raise_for_failures()


def test_key_pem_never_in_logs(fake, issuer, caplog):
    files = issuer.issue(["www.example.com"])
    with caplog.at_level(logging.DEBUG, logger="ns_letsencrypt"):
        run(fake, files, "www.example.com")
    secret = issuer.last.key_pem(serialization.PrivateFormat.TraditionalOpenSSL).decode()
    body = secret.splitlines()[1]
    assert body not in caplog.text


# -- the commands ----------------------------------------------------------------------------------


def test_copytons_save_and_saveconfig_keep_the_original_arguments(fake, issuer, tmp_path):
    from tests.test_cli_test import COPYTONS, run_process, settings_env

    files = issuer.issue(["www.example.com"])
    env = settings_env(fake, tmp_path)
    status, out, _ = run_process([str(COPYTONS), "save", str(files["cert"]), str(files["key"]),
                                  str(files["chain"]), "www.example.com"], env, tmp_path)
    assert status == 0 and "le-www.example.com added" in out
    assert certkey(fake, "le-www.example.com")["serial"] == serial_of(issuer.last)
    fake.state.config_changed = True
    status, out, _ = run_process([str(COPYTONS), "saveconfig"], env, tmp_path)
    assert status == 0 and not fake.state.config_changed


def test_reconcile_command_prints_json_and_exits_by_failure_class(fake, issuer, tmp_path):
    from tests.test_cli_test import run_process, settings_env

    domains, certs_dir = _dehydrated_tree(tmp_path, issuer, ["a.example.com", "b.example.com"])
    (certs_dir / "b.example.com" / "privkey.pem").write_bytes(
        (certs_dir / "a.example.com" / "privkey.pem").read_bytes())
    argv = [sys.executable, "-m", "ns_letsencrypt", "reconcile", "--basedir", str(domains.parent),
            "--json"]
    status, out, err = run_process(argv, settings_env(fake, tmp_path), tmp_path)
    assert status == 8  # ExitStatus.DEPLOY: b's key does not match its certificate
    document = __import__("json").loads(out)
    assert [d["certkey"] for d in document["deployed"]] == ["le-a.example.com"]
    assert document["failed"] == ["b.example.com"] and document["saved"] is True
    assert "b.example.com" in err
