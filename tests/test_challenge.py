"""HTTP-01 challenge objects on the fake NetScaler: names, priorities, bulk requests, clean,
sweep, up-front rejection, pre-flight diagnosis, and every bind point.

Assertions look at the appliance (objects, bindings, the request log) and at what its HTTP data
plane answers, never at which client methods were called.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ns_letsencrypt import challenge, cli
from ns_letsencrypt.challenge import Challenge
from ns_letsencrypt.config import Settings
from ns_letsencrypt.errors import ChallengeError, ExitStatus, NitroPermissionError
from ns_letsencrypt.nitro import NitroClient
from ns_letsencrypt.session import open_client
from tests.conftest import PASSWORD, fake_settings

THUMB = "KxPl8CqV3nJx0aQ4o2bS8mE1gD9yT6uW5rZ7hL0klY4"


def make(domain: str, n: int = 0) -> Challenge:
    token = f"tok{n:02d}-{domain.replace('.', '_')}".ljust(43, "A")[:43]
    return Challenge(domain, token, f"{token}.{THUMB}")


def names(n: int) -> list[Challenge]:
    return [make(f"n{i}.example.test", i) for i in range(n)]


@pytest.fixture
def settings(fake: Any) -> Settings:
    return fake_settings(fake, preflight_address=f"127.0.0.1:{fake.dataplane_port}")


@pytest.fixture
def client(settings: Settings) -> Iterator[NitroClient]:
    with open_client(settings) as nitro:
        yield nitro


def ours(fake: Any, prefix: str = "le-acme-") -> dict[str, list[str]]:
    """Our challenge objects and bindings currently on the fake."""
    with fake.state.lock:
        bound = [b.policyname for bs in fake.state.bindings.values() for b in bs]
    return {
        "actions": sorted(o["name"] for o in fake.objects("responderaction")
                          if o["name"].startswith(prefix)),
        "policies": sorted(o["name"] for o in fake.objects("responderpolicy")
                           if o["name"].startswith(prefix)),
        "bound": sorted(p for p in bound if p.startswith(prefix)),
    }


def bindings_at(fake: Any, point: str) -> dict[str, int]:
    with fake.state.lock:
        return {b.policyname: b.priority for b in fake.state.bindings.get(point, [])}


def answer(settings: Settings, item: Challenge) -> challenge.Probe:
    return challenge.probe(settings, item)


def admin_policy(client: NitroClient, name: str, rule: str, action: dict[str, Any]) -> None:
    """An admin's own responder action + policy (not ours: no prefix, no marker)."""
    client.add("responderaction", {"name": f"{name}-act", **action})
    client.add("responderpolicy", {"name": name, "rule": rule, "action": f"{name}-act"})


def bind_lb(client: NitroClient, policy: str, priority: int, vserver: str = "web") -> None:
    client.bind("lbvserver_responderpolicy_binding",
                {"name": vserver, "policyname": policy, "priority": priority,
                 "gotopriorityexpression": "END"})


# -- names ------------------------------------------------------------------------------


def test_object_names_are_prefixed_unique_per_token_and_short(settings: Settings) -> None:
    a, b = make("www.example.com"), make("www.example.org")
    names_a, names_b = challenge.object_names(settings, a.token), challenge.object_names(
        settings, b.token)
    assert names_a != names_b
    assert all(n.startswith("le-acme-") and len(n) <= 127 for n in names_a + names_b)
    assert "example" not in "".join(names_a)  # never derived from a (truncated) domain


def test_long_domain_gets_normal_names(settings: Settings) -> None:
    long_name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 57])
    item = make(long_name)
    challenge.validate([item])
    action, policy = challenge.object_names(settings, item.token)
    assert len(action) <= 127 and len(policy) <= 127


# -- deploy -----------------------------------------------------------------------------


def test_deploy_answers_exactly_the_key_authorization(
    fake: Any, settings: Settings, client: NitroClient
) -> None:
    item = make("www.example.test")
    deployment = challenge.deploy(client, settings, [item])
    result = answer(settings, item)
    assert (result.status, result.body) == (200, item.key_authorization.encode())
    _, policy = challenge.object_names(settings, item.token)
    assert deployment.priorities == {policy: settings.priority_start}
    assert bindings_at(fake, "lb:web") == {policy: settings.priority_start}
    stored = {o["name"]: o for o in fake.objects("responderpolicy")}[policy]
    assert f'HTTP.REQ.URL.EQ("/.well-known/acme-challenge/{item.token}")' in stored["rule"]
    assert stored["comment"].startswith("ns-letsencrypt ")


def test_policy_answers_only_its_own_host(settings: Settings, client: NitroClient) -> None:
    item = make("www.example.test")
    challenge.deploy(client, settings, [item])
    other_host = Challenge("other.example.test", item.token, item.key_authorization)
    assert answer(settings, other_host).status == 404


def test_long_key_authorization_is_split_into_literals(
    fake: Any, settings: Settings, client: NitroClient
) -> None:
    token = "T" * 200
    item = Challenge("www.example.test", token, f"{token}.{THUMB}")  # 244 + 47 > 255
    challenge.deploy(client, settings, [item])
    result = answer(settings, item)
    assert (result.status, result.body) == (200, item.key_authorization.encode())


def test_priorities_skip_the_admins_occupied_ones(
    fake: Any, settings: Settings, client: NitroClient
) -> None:
    admin_policy(client, "admin-block", 'HTTP.REQ.URL.STARTSWITH("/private")',
                 {"type": "respondwith", "target": '"HTTP/1.1 403 Forbidden\\r\\n\\r\\n"'})
    admin_policy(client, "admin-block2", 'HTTP.REQ.URL.STARTSWITH("/secret")',
                 {"type": "respondwith", "target": '"HTTP/1.1 403 Forbidden\\r\\n\\r\\n"'})
    bind_lb(client, "admin-block", 10)
    bind_lb(client, "admin-block2", 12)
    items = names(3)
    challenge.deploy(client, settings, items)
    bound = bindings_at(fake, "lb:web")
    assert bound["admin-block"] == 10 and bound["admin-block2"] == 12
    mine = sorted(p for name, p in bound.items() if name.startswith("le-acme-"))
    assert mine == [11, 13, 14]
    assert all(answer(settings, i).body == i.key_authorization.encode() for i in items)


@pytest.mark.parametrize("count", [1, 3, 20])
def test_deploy_and_clean_cost_the_same_requests_for_any_count(
    fake: Any, settings: Settings, count: int
) -> None:
    items = names(count)
    before = len(fake.requests)
    with open_client(settings) as client:
        challenge.deploy(client, settings, items)
    deploy_calls = fake.requests[before:]
    before = len(fake.requests)
    with open_client(settings) as client:
        assert challenge.clean(client, settings, items) == []
    clean_calls = fake.requests[before:]
    # login, GET bindings, POST actions, POST policies, PUT bindings, logout
    assert [(r.method, r.resource) for r in deploy_calls] == [
        ("POST", "login"), ("GET", "lbvserver_responderpolicy_binding"),
        ("POST", "responderaction"), ("POST", "responderpolicy"),
        ("PUT", "lbvserver_responderpolicy_binding"), ("POST", "logout")]
    assert len(clean_calls) <= 5
    assert ours(fake) == {"actions": [], "policies": [], "bound": []}


def test_redeploying_the_same_challenge_is_idempotent(
    fake: Any, settings: Settings, client: NitroClient
) -> None:
    item = make("www.example.test")
    first = challenge.deploy(client, settings, [item])
    second = challenge.deploy(client, settings, [item])
    assert first.priorities == second.priorities
    assert len(ours(fake)["bound"]) == 1


def test_bind_that_loses_a_priority_race_is_replanned(
    fake: Any, settings: Settings, client: NitroClient
) -> None:
    fake.inject(method="PUT", resource="lbvserver_responderpolicy_binding", nth=1, times=1,
                kind="error", status=599, errorcode=3041,
                message="A policy is already bound to the specified priority")
    item = make("www.example.test")
    challenge.deploy(client, settings, [item])
    assert answer(settings, item).body == item.key_authorization.encode()
    puts = [r for r in fake.requests if r.method == "PUT"]
    assert len(puts) == 2


# -- rejection before any write ---------------------------------------------------------


@pytest.mark.parametrize("domain", [
    "*.example.test", "192.0.2.10", "2001:db8::1", "exa mple.test", "-bad.example.test",
    "a" * 64 + ".example.test", ("a" * 62 + ".") * 4 + "test", "localhost", "host.123",
    'quote".example.test',
], ids=["wildcard", "ipv4", "ipv6", "space", "hyphen", "label64", "name256", "dotless",
        "numeric-tld", "quote"])
def test_names_the_netscaler_cannot_answer_are_rejected_without_writes(
    fake: Any, settings: Settings, client: NitroClient, domain: str
) -> None:
    with pytest.raises(ChallengeError):
        challenge.deploy(client, settings, [make("ok.example.test"), make(domain, 1)])
    assert fake.writes() == []


def test_missing_vserver_is_reported_before_any_write(fake: Any) -> None:
    settings = fake_settings(fake, vserver="nosuch")
    with open_client(settings) as client, pytest.raises(ChallengeError, match="nosuch"):
        challenge.deploy(client, settings, [make("www.example.test")])
    assert fake.writes() == []


def test_parse_triples_accepts_one_or_many() -> None:
    args = ["a.example.test", "t1", "t1.x", "b.example.test", "t2", "t2.x"]
    assert [c.domain for c in challenge.parse_triples(args)] == ["a.example.test",
                                                                 "b.example.test"]
    with pytest.raises(ChallengeError):
        challenge.parse_triples(args[:4])


# -- command policy ---------------------------------------------------------------------

API_USER = "le-api"
NO_LB_BIND = r"^(?!bind lb vserver)"  # everything except binding at an lb vserver


def refuse_bind(fake: Any, how: str) -> None:
    """Make binding at the lb vserver fail with 2138, the way a command policy does."""
    if how == "policy":  # the fake's command policy: 207 with a per-item 2138 for a bulk bind
        fake.add_user(API_USER, PASSWORD, policies=[("ALLOW", NO_LB_BIND)])
    else:  # a firmware that refuses the whole request instead
        fake.inject(method="PUT", resource="lbvserver_responderpolicy_binding", times=9,
                    kind="error", status=403, errorcode=2138,
                    message="Not authorized to execute this command [bind lb vserver web]")


@pytest.mark.parametrize(("how", "count"), [("policy", 1), ("policy", 3), ("whole", 1)])
def test_refused_bind_exits_4_naming_the_command_and_leaves_nothing(
    fake: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], how: str, count: int,
) -> None:
    refuse_bind(fake, how)
    user = API_USER if how == "policy" else "nsroot"
    for name, value in {"NS_LE_HOME": str(tmp_path), "NS_URL": fake.url, "NS_USER": user,
                        "NS_PASSWORD": PASSWORD, "NS_TLS_PIN": fake.cert_sha256,
                        "NS_VSERVER": "web"}.items():
        monkeypatch.setenv(name, value)
    triples = [arg for c in names(count) for arg in (c.domain, c.token, c.key_authorization)]

    code = cli.main(["challenge", *triples])

    err = capsys.readouterr().err
    assert code == ExitStatus.AUTH == 4, err
    assert "Not authorized to execute this command [bind lb vserver web" in err
    assert "see 'ns-letsencrypt policy'" in err
    assert PASSWORD not in err
    assert ours(fake) == {"actions": [], "policies": [], "bound": []}
    assert [r for r in fake.requests if r.method == "POST" and r.status < 300]  # it had added


def test_deploy_raises_the_refused_command(fake: Any) -> None:
    fake.add_user(API_USER, PASSWORD, policies=[("ALLOW", NO_LB_BIND)])
    settings = fake_settings(fake, username=API_USER)
    with open_client(settings) as client, pytest.raises(NitroPermissionError) as caught:
        challenge.deploy(client, settings, names(2))
    assert (caught.value.command or "").startswith("bind lb vserver web -policyName le-acme-")


# -- clean ------------------------------------------------------------------------------


def test_clean_removes_exactly_what_was_deployed_and_is_idempotent(
    fake: Any, settings: Settings, client: NitroClient
) -> None:
    keep, drop = make("keep.example.test", 1), make("drop.example.test", 2)
    challenge.deploy(client, settings, [keep, drop])
    assert challenge.clean(client, settings, [drop]) == []
    assert challenge.clean(client, settings, [drop]) == []
    left = ours(fake)
    keep_names = sorted(challenge.object_names(settings, keep.token))
    assert sorted(left["actions"] + left["policies"]) == keep_names
    assert answer(settings, keep).status == 200


def test_clean_of_never_deployed_challenges_succeeds(
    fake: Any, settings: Settings, client: NitroClient
) -> None:
    assert challenge.clean(client, settings, names(3)) == []


def test_failed_cleanup_is_reported_not_raised(
    fake: Any, settings: Settings, client: NitroClient
) -> None:
    items = names(2)
    challenge.deploy(client, settings, items)
    # the bulk removal and the one-by-one retry of both policies fail
    fake.inject(method=None, resource="responderpolicy", action="*", nth=1, times=3,
                kind="error", status=599, errorcode=257, message="Operation not permitted")
    problems = challenge.clean(client, settings, items)
    assert problems
    assert challenge.sweep(client, settings)  # the sweep gets what clean could not
    assert ours(fake) == {"actions": [], "policies": [], "bound": []}


def test_clean_by_domain_removes_that_names_objects(
    fake: Any, settings: Settings, client: NitroClient
) -> None:
    a, b = make("a.example.test", 1), make("b.example.test", 2)
    challenge.deploy(client, settings, [a, b])
    assert challenge.clean_domains(client, settings, ["A.example.test"]) == []
    assert answer(settings, a).status == 404
    assert answer(settings, b).status == 200


# -- sweep ------------------------------------------------------------------------------


def test_sweep_removes_own_leftovers_and_only_stale_foreign_ones(
    fake: Any, settings: Settings, client: NitroClient
) -> None:
    now = time.time()
    mine, fresh, stale = make("mine.example.test", 1), make("fresh.example.test", 2), make(
        "stale.example.test", 3)
    challenge.deploy(client, settings, [mine])
    challenge.deploy(client, settings, [fresh], owner="otherhost0001", now=now - 60)
    challenge.deploy(client, settings, [stale], owner="otherhost0002", now=now - 3 * 3600)
    admin_policy(client, "le-acme-manual", "true", {"type": "noop"})  # our prefix, no marker
    removed = challenge.sweep(client, settings)
    assert sorted(removed) == sorted(challenge.object_names(settings, mine.token)
                                     + challenge.object_names(settings, stale.token))
    left = ours(fake)
    assert sorted(left["policies"]) == sorted(
        ["le-acme-manual", challenge.object_names(settings, fresh.token)[1]])
    assert answer(settings, fresh).status == 200
    assert challenge.sweep(client, settings) == []


def test_sweep_with_nothing_to_do_only_reads(fake: Any, settings: Settings) -> None:
    with open_client(settings) as client:
        assert challenge.sweep(client, settings) == []
    assert fake.writes() == []


# -- bind points ------------------------------------------------------------------------


def test_global_binding_uses_req_override(fake: Any) -> None:
    settings = fake_settings(fake, vserver=None, vserver_type="global",
                             preflight_address=f"127.0.0.1:{fake.dataplane_port}")
    item = make("www.example.test")
    with open_client(settings) as client:
        deployment = challenge.deploy(client, settings, [item])
        assert bindings_at(fake, "global:REQ_OVERRIDE") == dict(deployment.priorities)
        assert answer(settings, item).body == item.key_authorization.encode()
        assert challenge.clean(client, settings, [item]) == []
    assert bindings_at(fake, "global:REQ_OVERRIDE") == {}
    assert ours(fake) == {"actions": [], "policies": [], "bound": []}


def test_cs_binding(fake: Any) -> None:
    fake.add_csvserver("csweb", servicetype="HTTP", port=80, state="UP")
    settings = fake_settings(fake, vserver="csweb", vserver_type="cs")
    item = make("www.example.test")
    with open_client(settings) as client:
        deployment = challenge.deploy(client, settings, [item])
        assert bindings_at(fake, "cs:csweb") == dict(deployment.priorities)
        assert challenge.clean(client, settings, [item]) == []
    assert bindings_at(fake, "cs:csweb") == {}


# -- pre-flight -------------------------------------------------------------------------


def test_preflight_passes_when_the_challenge_answers(
    settings: Settings, client: NitroClient
) -> None:
    items = names(2)
    deployment = challenge.deploy(client, settings, items)
    strict = fake_settings_like(settings, preflight="on")
    assert challenge.preflight(client, strict, items, deployment) == []


def test_preflight_diagnoses_a_404_and_names_earlier_policies(
    fake: Any, settings: Settings, client: NitroClient, caplog: pytest.LogCaptureFixture
) -> None:
    # An admin's catch-all NOOP policy at a lower priority number stops evaluation first.
    admin_policy(client, "admin-passthrough", 'HTTP.REQ.URL.STARTSWITH("/")', {"type": "noop"})
    bind_lb(client, "admin-passthrough", 5)
    item = make("www.example.test")
    deployment = challenge.deploy(client, settings, [item])
    with caplog.at_level(logging.WARNING):
        found = challenge.preflight(client, settings, [item], deployment)
    assert len(found) == 1 and "404" in found[0] and "admin-passthrough" in found[0]
    assert "admin-passthrough" in caplog.text  # warn mode logs and goes on


def test_preflight_on_names_a_shadowing_redirect_policy(
    fake: Any, settings: Settings, client: NitroClient
) -> None:
    admin_policy(client, "admin-https-redirect", "true",
                 {"type": "redirect", "target": '"https://" + HTTP.REQ.HOSTNAME + HTTP.REQ.URL'})
    bind_lb(client, "admin-https-redirect", 1)
    item = make("www.example.test")
    strict = fake_settings_like(settings, preflight="on")
    deployment = challenge.deploy(client, strict, [item])
    with pytest.raises(ChallengeError, match="admin-https-redirect") as caught:
        challenge.preflight(client, strict, [item], deployment)
    assert "30" in str(caught.value) and "redirect" in str(caught.value)


def test_preflight_reports_an_unreachable_address(
    settings: Settings, client: NitroClient
) -> None:
    from tests.conftest import closed_port

    item = make("www.example.test")
    deployment = challenge.deploy(client, settings, [item])
    nowhere = fake_settings_like(settings, preflight_address=f"127.0.0.1:{closed_port()}")
    found = challenge.preflight(client, nowhere, [item], deployment)
    assert len(found) == 1 and "DNS" in found[0] and "firewall" in found[0]


def test_preflight_off_does_not_probe(settings: Settings, client: NitroClient) -> None:
    item = make("www.example.test")
    deployment = challenge.deploy(client, settings, [item])
    off = fake_settings_like(settings, preflight="off", preflight_address="127.0.0.1:1")
    assert challenge.preflight(client, off, [item], deployment) == []


def fake_settings_like(settings: Settings, **changes: Any) -> Settings:
    from dataclasses import replace

    return replace(settings, **changes)


# -- answers the reference leaves open ------------------------------------------------------


@pytest.mark.parametrize("count", [1, 3])
def test_rerun_accepts_any_conflict_answer_for_existing_objects(
        fake: Any, client: NitroClient, settings: Settings, count: int) -> None:
    """409 with an unexpected errorcode (only 3094 is confirmed) still means 'exists'; a bulk
    request refused as a whole, without per-item answers, is resent item by item."""
    items = names(count)
    challenge.deploy(client, settings, items)
    fake.inject(method="POST", resource="responderaction", status=409, errorcode=9999,
                message="Resource already exists")
    challenge.deploy(client, settings, items)  # dehydrated retried the same tokens
    assert all(answer(settings, c).body.strip() == c.key_authorization.encode() for c in items)
    assert len(ours(fake)["bound"]) == count
