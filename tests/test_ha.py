"""ns_letsencrypt/ha.py against the fake HA pair: following the primary, the peer check, a
failover in the middle of a run, several pins. End-to-end runs are in test_ha_e2e.py."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ns_letsencrypt import appliance, deploy, ha
from ns_letsencrypt.errors import ApplianceNotReady, DeployError, ExitStatus
from ns_letsencrypt.session import open_client
from tests.conftest import PASSWORD, USER, closed_port, fake_settings
from tests.fakens.ha import FakeHaPair
from tests.test_deploy import Issuer, certkey, serial_of


@pytest.fixture
def pair() -> Iterator[FakeHaPair]:
    with FakeHaPair(users={USER: PASSWORD}) as fakes:
        fakes.add_lbvserver("web")
        yield fakes


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return Issuer(tmp_path)


def pair_settings(pair: FakeHaPair, node: Any = None, **overrides: Any) -> Any:
    node = node or pair.a
    pins = f"{pair.a.cert_sha256},{pair.b.cert_sha256}"
    return fake_settings(node, tls_pin=pins, **overrides)


def deploy_one(settings: Any, files: dict[str, Path], domain: str) -> deploy.DeployResult:
    with open_client(settings) as client:
        result = deploy.deploy_cert(client, settings, domain, str(files["key"]),
                                    str(files["cert"]), str(files["chain"]))
        appliance.finish_run(client, settings, result.changed)
    return result


def test_several_pins_reach_each_node(pair: FakeHaPair) -> None:
    for node in pair.nodes:
        with open_client(pair_settings(pair, node)) as client:
            assert client.get("hanode", "0")[0]["ipaddress"] == node.host


def test_follow_primary_from_the_secondary(pair: FakeHaPair,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ns_letsencrypt")
    settings = pair_settings(pair, pair.b)
    primary = ha.follow_primary(settings)
    assert primary.url == pair.a.url and primary.tls_pin == settings.tls_pin
    assert [r.getMessage() for r in caplog.records] == [
        f"NS_URL {pair.b.url} is the HA secondary; using the primary at {pair.a.url}"]
    assert ha.follow_primary(pair_settings(pair)) == pair_settings(pair)  # at the primary


def test_an_unreachable_primary_is_exit_6(pair: FakeHaPair) -> None:
    settings = pair_settings(pair, pair.b, ha_peer_url=f"https://127.0.0.1:{closed_port()}")
    with pytest.raises(ApplianceNotReady) as info:
        ha.follow_primary(settings)
    assert info.value.exit_status == ExitStatus.NOT_READY
    assert "is the HA secondary and the primary at" in info.value.message
    assert pair.a.writes() == [] and pair.b.writes() == []


def test_a_failover_between_two_certificates_stops_the_writes(pair: FakeHaPair,
                                                              issuer: Issuer) -> None:
    settings = pair_settings(pair)
    first, second = issuer.issue(["one.example.com"]), issuer.issue(["two.example.com"])
    with open_client(settings) as client:
        deployer = deploy.Deployer(client, settings)
        deployer.deploy(deploy.load_bundle(str(first["key"]), str(first["cert"]),
                                           str(first["chain"])))
        pair.failover()
        writes = len(pair.a.writes())
        with pytest.raises(ApplianceNotReady) as info:
            deployer.deploy(deploy.load_bundle(str(second["key"]), str(second["cert"]),
                                               str(second["chain"])))
    assert "stopped being the HA primary" in info.value.message
    assert len(pair.a.writes()) == writes  # nothing more reached the old primary
    assert certkey(pair.b, "le-one.example.com") is not None  # the new primary has the first


def test_off_reads_nothing_on_the_peer(pair: FakeHaPair, issuer: Issuer) -> None:
    deploy_one(pair_settings(pair, ha_verify="off"), issuer.issue(["www.example.com"]),
               "www.example.com")
    assert [r for r in pair.b.requests if r.resource != "login"] == []


def test_the_peer_check_reads_files_and_certkeys_only(pair: FakeHaPair, issuer: Issuer) -> None:
    deploy_one(pair_settings(pair, ha_verify="on"), issuer.issue(["www.example.com"]),
               "www.example.com")
    assert pair.b.writes() == []
    assert {r.resource for r in pair.b.requests} <= {"systemfile", "sslcertkey", "login",
                                                      "logout"}
    assert certkey(pair.b, "le-www.example.com")["serial"] == serial_of(issuer.last)


def test_a_secondary_that_missed_the_commands_is_repaired_by_a_forced_sync(
        pair: FakeHaPair, issuer: Issuer) -> None:
    pair.propagation = False
    deploy_one(pair_settings(pair, ha_verify="on"), issuer.issue(["www.example.com"]),
               "www.example.com")
    assert certkey(pair.b, "le-www.example.com")["serial"] == serial_of(issuer.last)
    assert [r.action for r in pair.a.writes() if r.resource == "hasync"] == ["Force"]


def test_on_names_the_node_and_the_pieces_when_the_repair_fails(pair: FakeHaPair,
                                                                issuer: Issuer) -> None:
    pair.propagation = False
    pair.a.inject("POST", "hasync", "Force", kind="error", errorcode=412,
                  message="Synchronization is in progress")
    with pytest.raises(DeployError) as info:
        deploy_one(pair_settings(pair, ha_verify="on"), issuer.issue(["www.example.com"]),
                   "www.example.com")
    assert info.value.step == "ha-verify"
    assert "HA secondary https://127.0.0.2:" in info.value.message
    assert "certkey le-www.example.com missing" in info.value.message
    assert certkey(pair.a, "le-www.example.com")["serial"] == serial_of(issuer.last)


def test_writes_made_on_the_secondary_are_undone_by_the_primary(pair: FakeHaPair,
                                                               issuer: Issuer) -> None:
    from tests.fakens.rawclient import RawNitro

    files = issuer.issue(["www.example.com"])
    with RawNitro(pair.b.url, verify=str(pair.b.cert_file)) as client:
        assert client.login(USER, PASSWORD).status == 201
        for kind in ("cert", "key"):
            client.post("systemfile", {"systemfile": {
                "filename": f"stray.{kind}", "filelocation": "/nsconfig/ssl",
                "fileencoding": "BASE64",
                "filecontent": base64.b64encode(files[kind].read_bytes()).decode()}})
        client.post("sslcertkey", {"sslcertkey": {
            "certkey": "le-www.example.com", "cert": "stray.cert", "key": "stray.key"}})
    deploy_one(pair_settings(pair, ha_verify="on"), issuer.issue(["www.example.com"]),
               "www.example.com")
    assert certkey(pair.b, "le-www.example.com")["serial"] == serial_of(issuer.last)


def test_status_shows_both_nodes(pair: FakeHaPair, issuer: Issuer) -> None:
    from ns_letsencrypt import status

    pair.propagation = False
    settings = pair_settings(pair, ha_verify="warn")
    pair.a.inject("POST", "hasync", "Force", kind="error", errorcode=412,
                  message="Synchronization is in progress")
    deploy_one(settings, issuer.issue(["www.example.com"]), "www.example.com")
    with open_client(settings) as client:
        rows = status.collect(client, settings, None, status.Thresholds())
    assert rows[0].state == status.State.WARNING
    assert rows[0].problems == [f"HA secondary {pair.b.url}: certkey le-www.example.com missing"]

    pair.propagation = True
    pair.sync_config()
    with open_client(settings) as client:
        rows = status.collect(client, settings, None, status.Thresholds())
    assert rows[0].state == status.State.OK and rows[0].ha_peer is not None
    assert rows[0].ha_peer["this_node"] == "primary" and rows[0].ha_peer["match"]
    assert f"HA secondary {pair.b.url} holds the same serial and link" in status.render_table(rows)


def test_the_restricted_policy_user_can_sync_check_and_repair(pair: FakeHaPair,
                                                              issuer: Issuer) -> None:
    from ns_letsencrypt.policy import Scope, command_regex

    settings = pair_settings(pair, ha_verify="on", username="le-api", password="Le-api-pw-1")
    pair.add_user("le-api", "Le-api-pw-1",
                  policies=[("ALLOW", command_regex(Scope.from_settings(settings)))])
    pair.propagation = False  # the secondary misses the certkey: the forced sync repairs it
    deploy_one(settings, issuer.issue(["www.example.com"]), "www.example.com")
    assert certkey(pair.b, "le-www.example.com")["serial"] == serial_of(issuer.last)
    refused = [r for node in pair.nodes for r in node.requests if r.errorcode == 2138]
    assert refused == []
