"""The fake NetScaler's framework, auth and appliance resources, checked with raw HTTP.

Expectations come from nitro-reference.md (§1 envelope/status codes, §2 auth, §5.1, §6, §7,
§8.4), not from our client.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cryptography import x509

from tests.fakens import FakeNetScaler
from tests.fakens.rawclient import RawNitro, as_policyless_user

PASSWORD = "Fake-pw-1f3e"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeNetScaler]:
    with FakeNetScaler(users={"nsroot": PASSWORD}) as server:
        server.add_lbvserver("web", servicetype="HTTP", port=80)
        server.add_lbvserver("secure", servicetype="SSL", port=443, state="DOWN")
        server.add_csvserver("front", servicetype="HTTP", port=80)
        yield server


@pytest.fixture
def nitro(fake: FakeNetScaler) -> Iterator[RawNitro]:
    with RawNitro(fake.url, verify=str(fake.cert_file)) as client:
        assert client.login("nsroot", PASSWORD).status == 201
        yield client


@pytest.fixture(autouse=True)
def reset(fake: FakeNetScaler) -> Iterator[None]:
    yield
    fake.clear_faults()
    with fake.state.lock:
        fake.state.ha_state, fake.state.ha_peer = "Primary", False
        fake.state.header_auth = True
        fake.state.features["RESPONDER"] = True
        fake.state.cmdpolicies.clear()


# ---------------------------------------------------------------- listeners and certificate

def test_https_certificate_matches_fingerprint_and_names(fake: FakeNetScaler) -> None:
    port = int(fake.url.rsplit(":", 1)[1])
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest() == fake.cert_sha256
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]


def test_plain_http_listener_serves_nitro_too(fake: FakeNetScaler) -> None:
    with RawNitro(fake.http_url) as client:
        assert client.login("nsroot", PASSWORD).status == 201
        assert client.get("nsversion").status == 200


def test_cert_file_verifies_https_by_name_localhost(fake: FakeNetScaler) -> None:
    url = fake.url.replace("127.0.0.1", "localhost")
    with RawNitro(url, verify=str(fake.cert_file)) as client:
        assert client.login("nsroot", PASSWORD).status == 201


# ---------------------------------------------------------------- authentication

def test_login_returns_sessionid_and_cookies(fake: FakeNetScaler) -> None:
    response = requests.post(f"{fake.http_url}/nitro/v1/config/login",
                             json={"login": {"username": "nsroot", "password": PASSWORD}})
    body = response.json()
    assert response.status_code == 201
    assert body["errorcode"] == 0 and body["severity"] == "NONE"
    assert body["sessionid"].startswith("##")
    cookies = response.headers["Set-Cookie"]
    quoted = urllib.parse.quote(body["sessionid"], safe="")
    assert f"sessionid={quoted}; path=/nitro/v1" in cookies
    assert "NITRO_AUTH_TOKEN=" in cookies
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize("cookie", ["NITRO_AUTH_TOKEN={raw}", "sessionid={quoted}",
                                    "NITRO_AUTH_TOKEN={quoted}", "other=1; sessionid={quoted}"])
def test_either_cookie_authenticates(fake: FakeNetScaler, nitro: RawNitro, cookie: str) -> None:
    token = str(nitro.token)
    header = cookie.format(raw=token, quoted=urllib.parse.quote(token, safe=""))
    assert nitro.get("nsversion", headers={"Cookie": header}).status == 200


@pytest.mark.parametrize("user,password", [("nsroot", "wrong"), ("nobody", PASSWORD)])
def test_bad_credentials_are_401_354(fake: FakeNetScaler, user: str, password: str) -> None:
    with RawNitro(fake.http_url) as client:
        answer = client.login(user, password)
    assert (answer.status, answer.errorcode) == (401, 354)
    assert answer.message == "Invalid username or password"


@pytest.mark.parametrize("cookie", [None, "NITRO_AUTH_TOKEN=##DEADBEEF", "sessionid=junk"])
def test_missing_or_unknown_session_is_401_444(fake: FakeNetScaler, cookie: Any) -> None:
    with RawNitro(fake.http_url) as client:
        answer = client.get("nsversion", headers={"Cookie": cookie} if cookie else None)
    assert (answer.status, answer.errorcode) == (401, 444)
    assert answer.message == "Session expired or killed. Please login again"


def test_logout_ends_the_session(fake: FakeNetScaler, nitro: RawNitro) -> None:
    assert nitro.post("logout", {"logout": {}}).status in (200, 201)
    answer = nitro.get("nsversion")
    assert (answer.status, answer.errorcode) == (401, 444)


def test_inactive_session_expires(fake: FakeNetScaler, nitro: RawNitro) -> None:
    with fake.state.lock:
        fake.state.sessions[str(nitro.token)].expires_at = time.monotonic() - 1
    answer = nitro.get("nsversion")
    assert (answer.status, answer.errorcode) == (401, 444)


def test_expire_sessions_kills_every_session(fake: FakeNetScaler, nitro: RawNitro) -> None:
    fake.expire_sessions()
    assert nitro.get("nsversion").errorcode == 444


def test_login_timeout_is_kept_and_range_checked(fake: FakeNetScaler) -> None:
    with RawNitro(fake.http_url) as client:
        assert client.login("nsroot", PASSWORD, timeout=900).status == 201
        with fake.state.lock:
            assert fake.state.sessions[str(client.token)].timeout == 900
        answer = client.login("nsroot", PASSWORD, timeout=5)
    assert (answer.status, answer.errorcode) == (599, 1219)


def test_header_auth_needs_no_session(fake: FakeNetScaler) -> None:
    with fake.state.lock:
        sessions_before = len(fake.state.sessions)
    with RawNitro(fake.http_url) as client:
        client.headers = {"X-NITRO-USER": "nsroot", "X-NITRO-PASS": PASSWORD}
        assert client.get("nsversion").status == 200
        client.headers["X-NITRO-PASS"] = "wrong"
        wrong = client.get("nsversion")
    assert (wrong.status, wrong.errorcode) == (401, 354)
    with fake.state.lock:
        assert len(fake.state.sessions) == sessions_before


def test_header_auth_can_be_disabled(fake: FakeNetScaler) -> None:
    with fake.state.lock:
        fake.state.header_auth = False
    with RawNitro(fake.http_url) as client:
        client.headers = {"X-NITRO-USER": "nsroot", "X-NITRO-PASS": PASSWORD}
        answer = client.get("nsversion")
    assert (answer.status, answer.errorcode) == (401, 1244)


def test_login_password_is_not_logged(fake: FakeNetScaler, nitro: RawNitro) -> None:
    logins = [r for r in fake.requests if r.resource == "login"]
    assert logins and all(PASSWORD not in json.dumps(r.body) for r in logins)


# ---------------------------------------------------------------- appliance resources

def test_nsversion_is_an_object(nitro: RawNitro, fake: FakeNetScaler) -> None:
    fake.set_version("NetScaler NS13.1: Build 49.13.nc, Date: Jun 17 2023, 00:25:57   (64-bit)")
    body = nitro.get("nsversion").json
    assert body["nsversion"]["version"].startswith("NetScaler NS13.1: Build 49.13")


def test_hanode_standalone_primary(nitro: RawNitro) -> None:
    nodes = nitro.get("hanode").json["hanode"]
    assert [(n["id"], n["state"]) for n in nodes] == [("0", "Primary")]
    assert nitro.get("nsconfig").json["nsconfig"]["systemtype"] == "Stand-alone"


def test_secondary_lists_peer_and_refuses_writes(fake: FakeNetScaler, nitro: RawNitro) -> None:
    fake.set_ha_state("Secondary")
    nodes = nitro.get("hanode").json["hanode"]
    assert [(n["id"], n["state"]) for n in nodes] == [("0", "Secondary"), ("1", "Primary")]
    assert nitro.get("nsconfig").json["nsconfig"]["systemtype"] == "HA"
    answer = nitro.post("nsconfig?action=save", {"nsconfig": {}})
    assert answer.status == 599 and answer.errorcode not in (None, 0)


def test_nsfeature_enable_and_disable(fake: FakeNetScaler, nitro: RawNitro) -> None:
    fake.set_feature("RESPONDER", False)
    feature = nitro.get("nsfeature").json["nsfeature"]
    assert feature["responder"] is False and "RESPONDER" not in feature["feature"]
    answer = nitro.post("nsfeature?action=enable", {"nsfeature": {"feature": ["responder"]}})
    assert answer.status == 200
    feature = nitro.get("nsfeature").json["nsfeature"]
    assert feature["responder"] is True and "RESPONDER" in feature["feature"]
    bad = nitro.post("nsfeature?action=enable", {"nsfeature": {"feature": ["NOPE"]}})
    assert (bad.status, bad.errorcode) == (599, 1097)


def test_vservers_all_and_by_name(nitro: RawNitro) -> None:
    names = [v["name"] for v in nitro.get("lbvserver").json["lbvserver"]]
    assert names[:2] == ["web", "secure"]
    (secure,) = nitro.get("lbvserver/secure").json["lbvserver"]
    assert secure["port"] == 443 and secure["servicetype"] == "SSL"
    assert secure["curstate"] == secure["effectivestate"] == "DOWN"
    (front,) = nitro.get("csvserver/front").json["csvserver"]
    assert front["curstate"] == "UP" and front["ipv46"] == "127.0.0.1"


def test_missing_vserver_is_404_258(nitro: RawNitro) -> None:
    answer = nitro.get("lbvserver/nope")
    assert (answer.status, answer.errorcode) == (404, 258)
    assert answer.message == "No such resource [name, nope]"


def test_double_encoded_name_in_path(fake: FakeNetScaler, nitro: RawNitro) -> None:
    fake.add_lbvserver("odd name#1")
    once = urllib.parse.quote("odd name#1", safe="")
    twice = urllib.parse.quote(once, safe="")
    for encoded in (once, twice):
        assert nitro.get(f"lbvserver/{encoded}").json["lbvserver"][0]["name"] == "odd name#1"


def test_config_changed_until_saved(fake: FakeNetScaler, nitro: RawNitro) -> None:
    nitro.post("nsconfig?action=save", {"nsconfig": {}})
    assert nitro.get("nsconfig").json["nsconfig"]["configchanged"] is False
    nitro.post("nsfeature?action=enable", {"nsfeature": {"feature": ["RESPONDER"]}})
    assert nitro.get("nsconfig").json["nsconfig"]["configchanged"] is True
    assert nitro.post("nsconfig?action=save", {"nsconfig": {}}).status == 200
    config = nitro.get("nsconfig").json["nsconfig"]
    assert config["configchanged"] is False and config["lastconfigsavetime"]


# ---------------------------------------------------------------- protocol details

def test_unknown_resource_and_action(nitro: RawNitro) -> None:
    unknown = nitro.get("nosuchthing")
    assert (unknown.status, unknown.errorcode) == (404, 258)
    bad_action = nitro.post("nsconfig?action=explode", {"nsconfig": {}})
    assert (bad_action.status, bad_action.errorcode) == (400, 1240)
    assert bad_action.message == "Invalid nitro action"


def test_invalid_json_is_400_1233(nitro: RawNitro) -> None:
    answer = nitro.request("POST", "responderaction", raw=b'{"responderaction": {')
    assert (answer.status, answer.errorcode) == (400, 1233)


def test_count_filter_and_attrs(nitro: RawNitro) -> None:
    total = len(nitro.get("lbvserver").json["lbvserver"])
    assert nitro.get("lbvserver?count=yes").json["lbvserver"] == [{"__count": total}]
    picked = nitro.get("lbvserver?filter=name:%2F%5Ese%2F&attrs=name,port").json["lbvserver"]
    assert picked == [{"name": "secure", "port": 443}]
    assert "lbvserver" not in nitro.get("lbvserver?filter=name:zzz").json


# ---------------------------------------------------------------- fault injection

def test_fault_error_on_nth_request_only(fake: FakeNetScaler, nitro: RawNitro) -> None:
    fault = fake.inject(method="GET", resource="nsversion", nth=2, status=599, errorcode=1538,
                        message="Certificate and private key do not match")
    first, second, third = (nitro.get("nsversion") for _ in range(3))
    assert first.status == 200 and third.status == 200
    assert (second.status, second.errorcode) == (599, 1538)
    assert second.json["severity"] == "ERROR"
    assert fault.fired == 1


def test_fault_times_and_wildcards(fake: FakeNetScaler, nitro: RawNitro) -> None:
    fake.inject(resource="*", times=2, errorcode=257)
    codes = [nitro.get(path).errorcode for path in ("hanode", "nsconfig", "nsfeature")]
    assert codes == [257, 257, 0]


def test_fault_action_matching(fake: FakeNetScaler, nitro: RawNitro) -> None:
    fake.inject(method="POST", resource="nsconfig", action="save", errorcode=1)
    assert nitro.get("nsconfig").status == 200
    assert nitro.post("nsconfig?action=save", {"nsconfig": {}}).errorcode == 1


@pytest.mark.parametrize("kind", ["reset", "timeout"])
def test_fault_drops_connection(fake: FakeNetScaler, nitro: RawNitro, kind: str) -> None:
    fake.inject(method="GET", resource="hanode", kind=kind, delay=0.05)
    with pytest.raises(requests.ConnectionError):
        nitro.get("hanode")
    assert nitro.get("hanode").status == 200


def test_fault_expire(fake: FakeNetScaler, nitro: RawNitro) -> None:
    fake.inject(method="GET", resource="nsversion", kind="expire")
    answer = nitro.get("nsversion")
    assert (answer.status, answer.errorcode) == (401, 444)
    assert nitro.get("nsversion").errorcode == 444  # the session is really gone


def test_fault_html_empty_badjson_error200(fake: FakeNetScaler, nitro: RawNitro) -> None:
    fake.inject(method="GET", resource="nsversion", kind="html")
    html = nitro.get("nsversion")
    assert html.status == 502 and html.headers["Content-Type"].startswith("text/html")
    fake.inject(method="GET", resource="nsversion", kind="empty", status=200)
    empty = nitro.get("nsversion")
    assert (empty.status, empty.text) == (200, "")
    fake.inject(method="GET", resource="nsversion", kind="badjson")
    bad = nitro.get("nsversion")
    assert bad.status == 200 and bad.json is None and bad.text.startswith("{")
    fake.inject(method="GET", resource="nsversion", kind="error200", errorcode=1538,
                message="Certificate and private key do not match")
    error200 = nitro.get("nsversion")
    assert (error200.status, error200.errorcode) == (200, 1538)
    assert error200.json["severity"] == "ERROR"


def test_fault_after_processing_keeps_the_write(fake: FakeNetScaler, nitro: RawNitro) -> None:
    nitro.post("nsconfig?action=save", {"nsconfig": {}})
    nitro.post("nsfeature?action=enable", {"nsfeature": {"feature": ["REWRITE"]}})
    fake.inject(method="POST", resource="nsconfig", action="save", kind="reset", after=True)
    with pytest.raises(requests.ConnectionError):
        nitro.post("nsconfig?action=save", {"nsconfig": {}})
    assert nitro.get("nsconfig").json["nsconfig"]["configchanged"] is False


def test_unknown_fault_kind_is_refused(fake: FakeNetScaler) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        fake.inject(kind="explode")


# ---------------------------------------------------------------- request log

def test_request_log_and_writes(fake: FakeNetScaler, nitro: RawNitro) -> None:
    start = len(fake.requests)
    nitro.get("lbvserver/web?attrs=name")
    nitro.post("nsconfig?action=save", {"nsconfig": {}})
    get, save = fake.requests[start:]
    assert (get.method, get.resource, get.name, get.query, get.status) == (
        "GET", "lbvserver", "web", {"attrs": "name"}, 200)
    assert (save.action, save.body, save.errorcode, save.user) == (
        "save", {"nsconfig": {}}, 0, "nsroot")
    assert save in fake.writes() and get not in fake.writes()
    assert all(r.resource not in ("login", "logout") for r in fake.writes())


# ---------------------------------------------------------------- command policies

def test_command_policy_allows_and_denies(fake: FakeNetScaler) -> None:
    fake.add_user("reader", "reader-pw", policies=[("DENY", r"^show ns config$"),
                                                  ("ALLOW", r"^show .*")])
    with RawNitro(fake.http_url) as client:
        assert client.login("reader", "reader-pw").status == 201
        assert client.get("nsversion").status == 200
        denied_show = client.get("nsconfig")
        denied_save = client.post("nsconfig?action=save", {"nsconfig": {}})
        assert client.post("logout", {"logout": {}}).status in (200, 201)
    assert (denied_show.status, denied_show.errorcode) == (403, 2138)
    assert denied_show.message == "Not authorized to execute this command [show ns config]"
    assert denied_save.message == "Not authorized to execute this command [save ns config]"


@pytest.mark.parametrize("method,path,body,cli", [
    ("GET", "nsversion", None, "show ns version"),
    ("GET", "hanode", None, "show HA node"),
    ("GET", "nsfeature", None, "show ns feature"),
    ("POST", "nsfeature?action=enable", {"nsfeature": {"feature": ["RESPONDER"]}},
     "enable ns feature RESPONDER"),
    ("GET", "lbvserver/web", None, "show lb vserver web"),
    ("GET", "csvserver", None, "show cs vserver"),
])
def test_cli_rendering(fake: FakeNetScaler, method: str, path: str, body: Any,
                       cli: str) -> None:
    answer = as_policyless_user(fake, method, path, body)
    assert (answer.status, answer.errorcode) == (403, 2138)
    assert answer.message == f"Not authorized to execute this command [{cli}]"


# ---------------------------------------------------------------- standalone

def test_standalone_runs_until_sigterm(tmp_path: Any) -> None:
    env = {**os.environ, "FAKENS_PASSWORD": "standalone-pw"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakens", "--lbvserver", "web",
                             "--sslvserver", "vs-ssl"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        with RawNitro(ready["url"], verify=ready["cert_file"]) as client:
            client.headers = {"X-NITRO-USER": "nsroot", "X-NITRO-PASS": "standalone-pw"}
            assert client.get("lbvserver/web").status == 200
            assert client.get("sslvserver/vs-ssl").status == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "standalone-pw" not in out + err
    assert set(ready) >= {"url", "http_url", "cert_file", "cert_sha256", "dataplane_port"}
    assert isinstance(ready["tls_port"], int)


def test_overlapping_faults_apply_one_at_a_time(fake: FakeNetScaler, nitro: RawNitro) -> None:
    first = fake.inject(method="GET", resource="hanode", errorcode=11)
    second = fake.inject(method="GET", resource="*", errorcode=22)
    codes = [nitro.get("hanode").errorcode for _ in range(3)]
    assert codes == [11, 22, 0]  # the second was due too and fires on the next request
    assert (first.fired, second.fired) == (1, 1)
