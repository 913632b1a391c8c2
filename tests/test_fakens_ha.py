"""The fake HA pair (tests/fakens/ha.py, hafiles.py), checked with raw HTTP against
research/nitro-binding-ha.md §3 and nitro-reference §6.3-6.5."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakens import FakeNetScaler
from tests.fakens.ha import FakeHaPair
from tests.fakens.rawclient import RawNitro
from tests.pki import make_hierarchy, make_leaf

PASSWORD = "Fake-pw-ha-77"


@pytest.fixture
def pair() -> Iterator[FakeHaPair]:
    with FakeHaPair(users={"nsroot": PASSWORD}) as fakes:
        fakes.add_lbvserver("web")
        yield fakes


def _client(node: FakeNetScaler) -> RawNitro:
    client = RawNitro(node.url, verify=str(node.cert_file))
    assert client.login("nsroot", PASSWORD).status == 201
    return client


def _upload(client: RawNitro, name: str, content: bytes) -> Any:
    return client.post("systemfile", {"systemfile": {
        "filename": name, "filelocation": "/nsconfig/ssl", "fileencoding": "BASE64",
        "filecontent": base64.b64encode(content).decode()}})


def _certkey_names(node: FakeNetScaler) -> set[str]:
    return {c["certkey"] for c in node.certkeys()}


def _leaf(tmp_path: Any) -> tuple[bytes, bytes]:
    leaf = make_leaf(make_hierarchy().issuer, ["www.example.com"])
    return leaf.pem, leaf.key_pem()


def test_hanode_describes_both_nodes_from_each_side(pair: FakeHaPair) -> None:
    with _client(pair.a) as a, _client(pair.b) as b:
        seen_a = [(n["id"], n["ipaddress"], n["state"]) for n in a.get("hanode").json["hanode"]]
        seen_b = [(n["id"], n["ipaddress"], n["state"]) for n in b.get("hanode").json["hanode"]]
        assert b.get("nsconfig").json["nsconfig"]["primaryip"] == "127.0.0.1"
    assert seen_a == [("0", "127.0.0.1", "Primary"), ("1", "127.0.0.2", "Secondary")]
    assert seen_b == [("0", "127.0.0.2", "Secondary"), ("1", "127.0.0.1", "Primary")]
    assert pair.a.url.rsplit(":", 1)[1] == pair.b.url.rsplit(":", 1)[1]  # same port


def test_uploads_stay_on_the_primary_and_the_certkey_add_fails_on_the_secondary(
        pair: FakeHaPair, tmp_path: Any) -> None:
    cert, key = _leaf(tmp_path)
    with _client(pair.a) as a:
        assert _upload(a, "x.crt", cert).status == 201
        assert _upload(a, "x.key", key).status == 201
        answer = a.post("sslcertkey", {"sslcertkey": {"certkey": "x", "cert": "x.crt",
                                                      "key": "x.key"}})
    assert answer.status == 201  # the primary succeeded; the secondary's failure is only logged
    assert "x" in _certkey_names(pair.a) and "x" not in _certkey_names(pair.b)
    assert "x.crt" not in pair.b.files()
    assert any("sslcertkey" in line and "x" in line for line in pair.failures)


def test_file_sync_then_add_reaches_both_nodes(pair: FakeHaPair, tmp_path: Any) -> None:
    cert, key = _leaf(tmp_path)
    with _client(pair.a) as a:
        _upload(a, "x.crt", cert)
        _upload(a, "x.key", key)
        assert a.post("hafiles?action=sync", {"hafiles": {"mode": ["ssl"]}}).status == 200
        a.post("sslcertkey", {"sslcertkey": {"certkey": "x", "cert": "x.crt", "key": "x.key"}})
    assert pair.b.files()["x.crt"] == cert
    assert "x" in _certkey_names(pair.b)
    assert pair.failures == []


def test_silent_sync_copies_nothing(pair: FakeHaPair, tmp_path: Any) -> None:
    cert, _ = _leaf(tmp_path)
    pair.silent_sync = True
    with _client(pair.a) as a:
        _upload(a, "x.crt", cert)
        assert a.post("hafiles?action=sync", {"hafiles": {"mode": ["ssl"]}}).status == 200
    assert "x.crt" not in pair.b.files()


def test_writes_on_the_secondary_are_accepted_and_lost_at_the_next_sync(
        pair: FakeHaPair) -> None:
    with _client(pair.b) as b:
        answer = b.post("nsfeature?action=disable", {"nsfeature": {"feature": ["RESPONDER"]}})
        assert answer.status == 200  # accepted: nothing refuses a write on the secondary
    assert pair.b.state.features["RESPONDER"] is False
    with _client(pair.a) as a:
        a.post("nsfeature?action=enable", {"nsfeature": {"feature": ["LB"]}})
    assert pair.b.state.features["RESPONDER"] is True  # lost: the primary's config came back


def test_failover_swaps_roles_and_each_node_keeps_its_own_listeners(pair: FakeHaPair) -> None:
    pair.failover()
    assert pair.primary is pair.b and pair.secondary is pair.a
    with _client(pair.b) as b:
        states = [(n["ipaddress"], n["state"]) for n in b.get("hanode").json["hanode"]]
    assert states == [("127.0.0.2", "Primary"), ("127.0.0.1", "Secondary")]
    assert pair.a.dataplane_port == pair.b.dataplane_port
    assert pair.a.host != pair.b.host


def test_standalone_refuses_hafiles_sync() -> None:
    with FakeNetScaler(users={"nsroot": PASSWORD}) as fake, _client(fake) as client:
        answer = client.post("hafiles?action=sync", {"hafiles": {"mode": ["ssl"]}})
    assert answer.status == 599 and answer.errorcode == 363


def test_force_sync_loads_certkeys_once_their_files_arrived(pair: FakeHaPair,
                                                            tmp_path: Any) -> None:
    cert, key = _leaf(tmp_path)
    with _client(pair.a) as a:
        _upload(a, "x.crt", cert)
        _upload(a, "x.key", key)
        a.post("sslcertkey", {"sslcertkey": {"certkey": "x", "cert": "x.crt", "key": "x.key"}})
        assert "x" not in _certkey_names(pair.b)
        a.post("hafiles?action=sync", {"hafiles": {"mode": ["ssl"]}})
        assert a.post("hasync?action=Force", {"hasync": {"force": True,
                                                         "save": "YES"}}).status == 200
    assert "x" in _certkey_names(pair.b)
