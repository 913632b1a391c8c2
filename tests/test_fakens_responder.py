"""The fake's responder resources, bindings, bulk calls and HTTP data plane, with raw HTTP.

Expectations come from nitro-reference.md §5, §8.2 and §9.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import socket
from collections.abc import Iterator
from typing import Any, Optional

import pytest
import requests

from tests.fakens import FakeNetScaler
from tests.fakens.rawclient import RawNitro, as_policyless_user

PASSWORD = "Fake-pw-2b9c"
TOKEN = "tok-Ab_1"
KEYAUTH = "tok-Ab_1.thumbprint-XYZ"
CHALLENGE = f"/.well-known/acme-challenge/{TOKEN}"
_names = itertools.count()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeNetScaler]:
    with FakeNetScaler(users={"nsroot": PASSWORD}) as server:
        server.add_lbvserver("web")
        server.add_csvserver("front")
        yield server


@pytest.fixture
def nitro(fake: FakeNetScaler) -> Iterator[RawNitro]:
    with RawNitro(fake.http_url) as client:
        assert client.login("nsroot", PASSWORD).status == 201
        yield client


@pytest.fixture(autouse=True)
def clean(fake: FakeNetScaler) -> Iterator[None]:
    yield
    with fake.state.lock:
        fake.state.bindings.clear()
        fake.state.responderpolicies.clear()
        fake.state.responderactions.clear()
        fake.state.bulk_remove = True
        fake.state.features["RESPONDER"] = True
        fake.state.cmdpolicies.clear()
        for vserver in fake.state.lbvservers.values():
            vserver.state = "UP"


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def respond_target(body: str) -> str:
    return '"HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\n' + body + '"'


def add_action(nitro: RawNitro, name: str, target: Optional[str] = None,
               kind: str = "respondwith", **extra: Any) -> Any:
    obj = {"name": name, "type": kind, **extra}
    if kind != "noop":
        obj["target"] = target if target is not None else respond_target(KEYAUTH)
    return nitro.post("responderaction", {"responderaction": obj})


def add_policy(nitro: RawNitro, name: str, action: str,
               rule: str = f'HTTP.REQ.URL.EQ("{CHALLENGE}")') -> Any:
    return nitro.post("responderpolicy",
                      {"responderpolicy": {"name": name, "rule": rule, "action": action}})


def challenge_pair(nitro: RawNitro, rule: str = f'HTTP.REQ.URL.EQ("{CHALLENGE}")',
                   target: Optional[str] = None, kind: str = "respondwith") -> str:
    """Add an action and a policy using it; return the policy name."""
    action, policy = unique("act"), unique("pol")
    assert add_action(nitro, action, target, kind).status == 201
    assert add_policy(nitro, policy, action, rule).status == 201
    return policy


def bind_lb(nitro: RawNitro, policy: str, priority: Any = 10, goto: str = "END",
            vserver: str = "web", method: str = "PUT") -> Any:
    body = {"lbvserver_responderpolicy_binding": {
        "name": vserver, "policyname": policy, "priority": priority,
        "gotopriorityexpression": goto}}
    return nitro.request(method, "lbvserver_responderpolicy_binding", body)


def bind_global(nitro: RawNitro, policy: str, priority: int, kind: str = "REQ_OVERRIDE",
                goto: str = "END") -> Any:
    return nitro.put("responderglobal_responderpolicy_binding",
                     {"responderglobal_responderpolicy_binding": {
                         "policyname": policy, "priority": priority,
                         "gotopriorityexpression": goto, "type": kind}})


def fetch(fake: FakeNetScaler, path: str = CHALLENGE,
          host: str = "www.example.test") -> requests.Response:
    with requests.Session() as http:
        http.trust_env = False
        return http.get(f"http://127.0.0.1:{fake.dataplane_port}{path}",
                        headers={"Host": f"{host}:5002"}, allow_redirects=False, timeout=10)


# ---------------------------------------------------------------- responderaction

def test_action_add_get_delete(nitro: RawNitro) -> None:
    target = respond_target(KEYAUTH)
    answer = add_action(nitro, "le-act-1", target, comment="ACME http-01",
                        bypasssafetycheck="YES")
    assert (answer.status, answer.errorcode) == (201, 0)
    (shown,) = nitro.get("responderaction/le-act-1").json["responderaction"]
    assert (shown["type"], shown["target"], shown["comment"]) == (
        "respondwith", target, "ACME http-01")
    assert [a["name"] for a in nitro.get("responderaction").json["responderaction"]] == [
        "le-act-1"]
    assert nitro.delete("responderaction/le-act-1").status == 200
    missing = nitro.get("responderaction/le-act-1")
    assert (missing.status, missing.errorcode) == (404, 258)
    assert "responderaction" not in nitro.get("responderaction").json


def test_action_errors(nitro: RawNitro) -> None:
    assert add_action(nitro, "dup").status == 201
    dup = add_action(nitro, "dup")
    assert (dup.status, dup.errorcode) == (409, 273)
    bad = add_action(nitro, "bad", target='"HTTP/1.1 200 OK\\r\\n\\r\\n')
    assert (bad.status, bad.errorcode) == (599, 2824)
    too_long = add_action(nitro, "long", target='"' + "x" * 256 + '"')
    assert too_long.errorcode == 2824
    assert add_action(nitro, "x" * 128).errorcode == 1106
    gone = nitro.delete("responderaction/nope")
    assert (gone.status, gone.errorcode) == (404, 258)


def test_action_in_use_cannot_be_deleted(nitro: RawNitro) -> None:
    add_action(nitro, "used")
    add_policy(nitro, "user", "used")
    answer = nitro.delete("responderaction/used")
    assert (answer.status, answer.errorcode) == (599, 832)


def test_long_target_split_into_literals(fake: FakeNetScaler, nitro: RawNitro) -> None:
    body = "a" * 200 + "b" * 200
    target = '"HTTP/1.1 200 OK\\r\\n\\r\\n" + "' + body[:200] + '" + "' + body[200:] + '"'
    bind_lb(nitro, challenge_pair(nitro, target=target))
    assert fetch(fake).text == body


# ---------------------------------------------------------------- responderpolicy

def test_policy_add_get_delete(nitro: RawNitro) -> None:
    add_action(nitro, "a")
    rule = f'HTTP.REQ.URL.EQ("{CHALLENGE}")'
    assert add_policy(nitro, "p", "a", rule).status == 201
    (shown,) = nitro.get("responderpolicy/p").json["responderpolicy"]
    assert (shown["rule"], shown["action"]) == (rule, "a")
    assert nitro.delete("responderpolicy/p").status == 200
    for answer in (nitro.get("responderpolicy/p"), nitro.delete("responderpolicy/p")):
        assert (answer.status, answer.errorcode, answer.message) == (
            404, 2054, "No such policy exists")


def test_policy_errors(nitro: RawNitro) -> None:
    add_action(nitro, "a")
    add_policy(nitro, "p", "a")
    dup = add_policy(nitro, "p", "a")
    assert (dup.status, dup.errorcode) == (409, 3094)
    no_action = add_policy(nitro, "q", "missing-action")
    assert no_action.status == 599 and no_action.errorcode not in (None, 0)
    bad_rule = add_policy(nitro, "r", "a", rule='HTTP.REQ.URL.EQ("/x"')
    assert (bad_rule.status, bad_rule.errorcode) == (599, 2843)
    unsupported = add_policy(nitro, "s", "a", rule='HTTP.REQ.COOKIE.EQ("x")')
    assert unsupported.errorcode == 2843
    builtin = add_policy(nitro, "t", "NOOP", rule="true")
    assert builtin.status == 201


def test_bound_policy_cannot_be_deleted(nitro: RawNitro) -> None:
    policy = challenge_pair(nitro)
    bind_lb(nitro, policy)
    answer = nitro.delete(f"responderpolicy/{policy}")
    assert (answer.status, answer.errorcode) == (599, 810)


def test_bulk_add_and_partial_failure(nitro: RawNitro) -> None:
    actions = [{"name": f"bulk-{i}", "type": "respondwith", "target": respond_target(str(i))}
               for i in range(3)]
    assert nitro.post("responderaction", {"responderaction": actions}).status == 201
    again = [actions[0], {**actions[0], "name": "bulk-new"}]
    failed = nitro.post("responderaction", {"responderaction": again})
    assert (failed.status, failed.errorcode) == (207, 1243)
    assert [r["errorcode"] for r in failed.json["response"]] == [273]  # exit: stops at first
    names = {a["name"] for a in nitro.get("responderaction").json["responderaction"]}
    assert "bulk-new" not in names
    go_on = nitro.post("responderaction", {"responderaction": again},
                       headers={"X-NITRO-ONERROR": "continue"})
    assert [r["errorcode"] for r in go_on.json["response"]] == [273, 0]
    assert nitro.get("responderaction/bulk-new").status == 200


# ---------------------------------------------------------------- vserver bindings

@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_lb_binding_lifecycle(nitro: RawNitro, method: str) -> None:
    assert "lbvserver_responderpolicy_binding" not in nitro.get(
        "lbvserver_responderpolicy_binding/web").json
    policy = challenge_pair(nitro)
    assert bind_lb(nitro, policy, method=method).status == 201
    (shown,) = nitro.get("lbvserver_responderpolicy_binding/web").json[
        "lbvserver_responderpolicy_binding"]
    assert (shown["name"], shown["policyname"], shown["priority"],
            shown["gotopriorityexpression"]) == ("web", policy, "10", "END")
    path = f"lbvserver_responderpolicy_binding/web?args=policyname:{policy}"
    assert nitro.delete(path).status == 200
    again = nitro.delete(path)
    assert (again.status, again.errorcode) == (599, 2097)


def test_lb_binding_errors(nitro: RawNitro) -> None:
    first, second = challenge_pair(nitro), challenge_pair(nitro)
    missing_vs = bind_lb(nitro, first, vserver="nope")
    assert (missing_vs.status, missing_vs.errorcode, missing_vs.message) == (
        404, 258, "No such resource [name, nope]")
    assert bind_lb(nitro, first, priority=10).status == 201
    taken = bind_lb(nitro, second, priority=10)
    assert (taken.status, taken.errorcode) == (599, 3041)
    twice = bind_lb(nitro, first, priority=20)
    assert (twice.status, twice.errorcode) == (409, 273)
    no_policy = bind_lb(nitro, "no-such-policy", priority=30)
    assert no_policy.errorcode == 2054
    get_missing = nitro.get("lbvserver_responderpolicy_binding/nope")
    assert (get_missing.status, get_missing.errorcode) == (404, 258)


def test_cs_binding_with_name_in_path(nitro: RawNitro) -> None:
    policy = challenge_pair(nitro)
    body = {"csvserver_responderpolicy_binding": {"name": "front", "policyname": policy,
                                                  "priority": 5}}
    assert nitro.put("csvserver_responderpolicy_binding/front", body).status == 201
    (shown,) = nitro.get("csvserver_responderpolicy_binding/front").json[
        "csvserver_responderpolicy_binding"]
    assert shown["priority"] == "5"
    assert nitro.delete(
        f"csvserver_responderpolicy_binding/front?args=policyname:{policy}").status == 200


def test_bulk_bind(nitro: RawNitro) -> None:
    policies = [challenge_pair(nitro) for _ in range(2)]
    body = {"lbvserver_responderpolicy_binding": [
        {"name": "web", "policyname": p, "priority": 100 + i} for i, p in enumerate(policies)]}
    assert nitro.put("lbvserver_responderpolicy_binding", body).status == 201
    shown = nitro.get("lbvserver_responderpolicy_binding/web").json[
        "lbvserver_responderpolicy_binding"]
    assert [b["priority"] for b in shown] == ["100", "101"]


# ---------------------------------------------------------------- global bindings

def test_global_binding_lifecycle(nitro: RawNitro) -> None:
    policy = challenge_pair(nitro)
    assert bind_global(nitro, policy, 33501).status == 201
    resource = "responderglobal_responderpolicy_binding"
    assert resource not in nitro.get(resource).json  # no args=type: nothing
    assert resource not in nitro.get(f"{resource}?args=type:REQ_DEFAULT").json
    (shown,) = nitro.get(f"{resource}?args=type:REQ_OVERRIDE").json[resource]
    assert (shown["policyname"], shown["priority"], shown["type"]) == (
        policy, "33501", "REQ_OVERRIDE")
    clash = bind_global(nitro, challenge_pair(nitro), 33501)
    assert clash.errorcode == 3041
    wrong_type = nitro.delete(f"{resource}?args=policyname:{policy},type:REQ_DEFAULT")
    assert (wrong_type.status, wrong_type.errorcode) == (599, 2097)
    ok = nitro.delete(f"{resource}?args=policyname:{policy},type:REQ_OVERRIDE,priority:1")
    assert ok.status == 200
    assert resource not in nitro.get(f"{resource}?args=type:REQ_OVERRIDE").json


# ---------------------------------------------------------------- bulk removal

@pytest.mark.parametrize("verb", ["rm", "delete"])
def test_bulk_remove_objects(fake: FakeNetScaler, nitro: RawNitro, verb: str) -> None:
    policies = [challenge_pair(nitro) for _ in range(2)]
    actions = [p["action"] for p in fake.objects("responderpolicy")]
    body = {"responderpolicy": [{"name": p} for p in policies]}
    assert nitro.post(f"responderpolicy?action={verb}", body).status == 200
    body = {"responderaction": [{"name": a} for a in actions]}
    assert nitro.post(f"responderaction?action={verb}", body).status == 200
    assert fake.objects("responderpolicy") == [] and fake.objects("responderaction") == []


def test_bulk_unbind(fake: FakeNetScaler, nitro: RawNitro) -> None:
    lb, glob = challenge_pair(nitro), challenge_pair(nitro)
    bind_lb(nitro, lb)
    bind_global(nitro, glob, 7)
    unbind = nitro.post("lbvserver_responderpolicy_binding?action=unbind",
                        {"lbvserver_responderpolicy_binding": [
                            {"name": "web", "policyname": lb},
                            {"name": "web", "policyname": "never-bound"}]},
                        headers={"X-NITRO-ONERROR": "continue"})
    assert (unbind.status, unbind.errorcode) == (207, 1243)
    assert [r["errorcode"] for r in unbind.json["response"]] == [0, 2097]
    answer = nitro.post("responderglobal_responderpolicy_binding?action=unbind",
                        {"responderglobal_responderpolicy_binding": [
                            {"policyname": glob, "type": "REQ_OVERRIDE"}]})
    assert answer.status == 200
    with fake.state.lock:
        assert all(not bound for bound in fake.state.bindings.values())


def test_bulk_remove_can_be_switched_off(fake: FakeNetScaler, nitro: RawNitro) -> None:
    policy = challenge_pair(nitro)
    with fake.state.lock:
        fake.state.bulk_remove = False
    for path, key in (("responderpolicy?action=rm", "responderpolicy"),
                      ("responderpolicy?action=delete", "responderpolicy"),
                      ("lbvserver_responderpolicy_binding?action=unbind",
                       "lbvserver_responderpolicy_binding")):
        answer = nitro.post(path, {key: [{"name": policy}]})
        assert (answer.status, answer.errorcode) == (400, 1240)
    assert nitro.delete(f"responderpolicy/{policy}").status == 200


def test_writes_mark_config_changed(nitro: RawNitro) -> None:
    nitro.post("nsconfig?action=save", {"nsconfig": {}})
    challenge_pair(nitro)
    assert nitro.get("nsconfig").json["nsconfig"]["configchanged"] is True


# ---------------------------------------------------------------- data plane

def test_dataplane_answers_only_while_bound(fake: FakeNetScaler, nitro: RawNitro) -> None:
    assert fetch(fake).status_code == 404
    policy = challenge_pair(nitro)
    bind_lb(nitro, policy)
    answer = fetch(fake)
    assert (answer.status_code, answer.text) == (200, KEYAUTH)
    assert answer.headers["Content-Type"] == "text/plain"
    assert fetch(fake, "/.well-known/acme-challenge/other").status_code == 404
    nitro.delete(f"lbvserver_responderpolicy_binding/web?args=policyname:{policy}")
    assert fetch(fake).status_code == 404
    assert [(r.host, r.path, r.status) for r in fake.dataplane_requests[-2:]] == [
        ("www.example.test", "/.well-known/acme-challenge/other", 404),
        ("www.example.test", CHALLENGE, 404)]


def test_dataplane_is_concurrent(fake: FakeNetScaler, nitro: RawNitro) -> None:
    bind_lb(nitro, challenge_pair(nitro))
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: fetch(fake).text, range(6)))
    assert answers == [KEYAUTH] * 6


def test_hostname_rule_ignores_port_and_case(fake: FakeNetScaler, nitro: RawNitro) -> None:
    rule = f'HTTP.REQ.HOSTNAME.EQ("www.example.test") && HTTP.REQ.URL.EQ("{CHALLENGE}")'
    bind_lb(nitro, challenge_pair(nitro, rule=rule))
    assert fetch(fake, host="WWW.Example.TEST").status_code == 200
    assert fetch(fake, host="other.example.test").status_code == 404


def test_global_override_redirect_shadows_vserver_policy(fake: FakeNetScaler,
                                                         nitro: RawNitro) -> None:
    ours = challenge_pair(nitro)
    bind_lb(nitro, ours)
    redirect = challenge_pair(
        nitro, rule="true", kind="redirect",
        target='"https://" + HTTP.REQ.HOSTNAME.HTTP_URL_SAFE + HTTP.REQ.URL.PATH_AND_QUERY')
    bind_global(nitro, redirect, 100)
    answer = fetch(fake)
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"https://www.example.test{CHALLENGE}"
    ours_global = challenge_pair(nitro)
    bind_global(nitro, ours_global, 50)  # lower number = evaluated first
    assert fetch(fake).text == KEYAUTH


def test_goto_next_continues_after_noop(fake: FakeNetScaler, nitro: RawNitro) -> None:
    noop = challenge_pair(nitro, rule="true", kind="noop")
    bind_global(nitro, noop, 10, goto="NEXT")
    bind_lb(nitro, challenge_pair(nitro))
    assert fetch(fake).text == KEYAUTH
    nitro.delete(f"responderglobal_responderpolicy_binding?args=policyname:{noop},"
                 "type:REQ_OVERRIDE")
    bind_global(nitro, noop, 10, goto="END")
    assert fetch(fake).status_code == 404


def test_global_default_comes_after_vserver(fake: FakeNetScaler, nitro: RawNitro) -> None:
    fallback = challenge_pair(nitro, rule="true", target=respond_target("default"))
    bind_global(nitro, fallback, 1, kind="REQ_DEFAULT")
    bind_lb(nitro, challenge_pair(nitro), priority=1000)
    assert fetch(fake).text == KEYAUTH
    assert fetch(fake, "/elsewhere").text == "default"


def test_responder_disabled_or_vserver_down(fake: FakeNetScaler, nitro: RawNitro) -> None:
    bind_lb(nitro, challenge_pair(nitro))
    fake.set_feature("RESPONDER", False)
    assert fetch(fake).status_code == 404
    fake.set_feature("RESPONDER", True)
    fake.set_vserver_state("web", "DOWN")
    assert fetch(fake).status_code == 503


def test_dataplane_vserver_can_be_switched(fake: FakeNetScaler, nitro: RawNitro) -> None:
    policy = challenge_pair(nitro)
    nitro.put("csvserver_responderpolicy_binding",
              {"csvserver_responderpolicy_binding": {"name": "front", "policyname": policy,
                                                     "priority": 1}})
    assert fake.dataplane_vserver == "web"
    assert fetch(fake).status_code == 404
    fake.dataplane_vserver = "front"
    try:
        assert fetch(fake).text == KEYAUTH
    finally:
        fake.dataplane_vserver = "web"


def test_dataplane_raw_response_is_sent_verbatim(fake: FakeNetScaler, nitro: RawNitro) -> None:
    target = '"HTTP/1.0 200 OK\\r\\nX-Quote: \\"q\\\\\\"\\r\\n\\r\\nbody"'
    bind_lb(nitro, challenge_pair(nitro, target=target))
    with socket.create_connection(("127.0.0.1", fake.dataplane_port), timeout=10) as sock:
        sock.sendall(f"GET {CHALLENGE} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    assert received == b'HTTP/1.0 200 OK\r\nX-Quote: "q\\"\r\n\r\nbody'


# ---------------------------------------------------------------- command policies

LE_POLICY = [("ALLOW", r"^(add|rm|show) responder (action|policy)( le-.*)?$"),
             ("ALLOW", r"^(bind|unbind) (lb|cs) vserver \S+ -policyName le-.*$"),
             ("ALLOW", r"^(bind|unbind|show) responder global.*$")]


@pytest.fixture
def restricted(fake: FakeNetScaler) -> Iterator[RawNitro]:
    fake.add_user("le-api", "le-api-pw", policies=LE_POLICY)
    with RawNitro(fake.http_url) as client:
        client.headers = {"X-NITRO-USER": "le-api", "X-NITRO-PASS": "le-api-pw"}
        yield client


def test_restricted_user_can_do_its_job(fake: FakeNetScaler, restricted: RawNitro) -> None:
    assert add_action(restricted, "le-act").status == 201
    assert add_policy(restricted, "le-pol", "le-act").status == 201
    assert bind_lb(restricted, "le-pol").status == 201
    assert fetch(fake).text == KEYAUTH
    assert restricted.delete(
        "lbvserver_responderpolicy_binding/web?args=policyname:le-pol").status == 200
    assert restricted.delete("responderpolicy/le-pol").status == 200
    assert restricted.delete("responderaction/le-act").status == 200


def test_restricted_user_is_denied_outside_its_prefix(fake: FakeNetScaler,
                                                      restricted: RawNitro,
                                                      nitro: RawNitro) -> None:
    denied = add_action(restricted, "admin-act", target='"HTTP/1.1 200 OK\\r\\n\\r\\nx"')
    assert (denied.status, denied.errorcode) == (403, 2138)
    assert denied.message == ("Not authorized to execute this command [add responder action "
                              'admin-act respondwith "\\"HTTP/1.1 200 OK\\\\r\\\\n\\\\r\\\\nx\\""]')
    admin_policy = challenge_pair(nitro)
    bind = bind_lb(restricted, admin_policy, priority=42)
    assert bind.message == ("Not authorized to execute this command [bind lb vserver web "
                            f"-policyName {admin_policy} -priority 42 "
                            "-gotoPriorityExpression END]")
    show = restricted.get("lbvserver_responderpolicy_binding/web")
    assert show.message == "Not authorized to execute this command [show lb vserver web]"
    bulk = restricted.post("responderaction", {"responderaction": [
        {"name": "le-ok", "type": "noop"}, {"name": "nope", "type": "noop"}]},
        headers={"X-NITRO-ONERROR": "continue"})
    assert bulk.status == 207
    assert [r["errorcode"] for r in bulk.json["response"]] == [0, 2138]


@pytest.mark.parametrize("method,path,body,cli", [
    ("PUT", "responderglobal_responderpolicy_binding",
     {"responderglobal_responderpolicy_binding": {"policyname": "p", "priority": 100,
                                                  "gotopriorityexpression": "END",
                                                  "type": "REQ_OVERRIDE"}},
     "bind responder global p 100 END -type REQ_OVERRIDE"),
    ("DELETE", "responderglobal_responderpolicy_binding?args=policyname:p,type:REQ_OVERRIDE",
     None, "unbind responder global p -type REQ_OVERRIDE"),
    ("DELETE", "lbvserver_responderpolicy_binding/web?args=policyname:p", None,
     "unbind lb vserver web -policyName p"),
    ("DELETE", "csvserver_responderpolicy_binding/front?args=policyname:p", None,
     "unbind cs vserver front -policyName p"),
    ("POST", "responderpolicy?action=rm", {"responderpolicy": {"name": "p"}},
     "rm responder policy p"),
    ("DELETE", "responderaction/a", None, "rm responder action a"),
    ("POST", "responderpolicy", {"responderpolicy": {"name": "p", "rule": "true",
                                                     "action": "a"}},
     "add responder policy p true a"),
    ("GET", "responderpolicy", None, "show responder policy"),
    ("POST", "nsconfig?action=save", {"nsconfig": {}}, "save ns config"),
])
def test_cli_rendering(fake: FakeNetScaler, method: str, path: str, body: Any,
                       cli: str) -> None:
    answer = as_policyless_user(fake, method, path, body)
    assert (answer.status, answer.errorcode) == (403, 2138)
    assert answer.message == f"Not authorized to execute this command [{cli}]"


# ---------------------------------------------------------------- warnings and helpers

def test_warning_when_responder_disabled(fake: FakeNetScaler, nitro: RawNitro) -> None:
    fake.set_feature("RESPONDER", False)
    quiet = add_action(nitro, "quiet")
    assert quiet.status == 201
    warned = nitro.post("responderaction?warning=yes", {"responderaction": {
        "name": "warned", "type": "noop"}})
    assert warned.status == 209
    assert warned.headers["X-NITRO-WARNING"] == "1067 - Feature(s) not enabled [RESPONDER]"
    assert warned.json["severity"] == "WARNING"
    assert nitro.get("responderaction/warned").status == 200


def test_objects_lists_bindings_of_every_bind_point(fake: FakeNetScaler,
                                                   nitro: RawNitro) -> None:
    policy = challenge_pair(nitro)
    bind_lb(nitro, policy)
    bind_global(nitro, challenge_pair(nitro), 9)
    assert [b["policyname"] for b in fake.objects("lbvserver_responderpolicy_binding")] == [
        policy]
    assert fake.objects("lbvserver_responderpolicy_binding", "web")[0]["priority"] == "10"
    assert len(fake.objects("responderglobal_responderpolicy_binding",
                            args={"type": "REQ_OVERRIDE"})) == 1
