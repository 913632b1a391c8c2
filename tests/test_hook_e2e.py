"""End to end: real dehydrated + pebble + challtestsrv + hooks/ns-hook.sh + the fake NetScaler;
and the entry points on their own: ns-hook.sh and the original tool's ns-copytons.py verbs.

pebble validates HTTP-01 against the fake's data plane, which answers only through the responder
policies our hook bound over NITRO. Each issuing run costs about 6-9 s (dehydrated's own sleeps),
so the bind point x names x HOOK_CHAIN matrix is covered pairwise rather than in full.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from ns_letsencrypt import challenge
from ns_letsencrypt.config import Settings
from ns_letsencrypt.session import open_client
from tests.conftest import PASSWORD, USER, closed_port
from tests.stack import HOOK, REPO, Stack, hook_env

PREFIX = "le-acme-"
RESPONDER = ("responderaction", "responderpolicy", "lbvserver_responderpolicy_binding",
             "csvserver_responderpolicy_binding", "responderglobal_responderpolicy_binding")


def leftovers(ns: Any) -> list[str]:
    """Every challenge object (action, policy, binding) still on the fake."""
    with ns.state.lock:
        bound = [f"bound:{point}:{b.policyname}" for point, bs in ns.state.bindings.items()
                 for b in bs if b.policyname.startswith(PREFIX)]
    objects = [o["name"] for kind in ("responderaction", "responderpolicy")
               for o in ns.objects(kind) if o["name"].startswith(PREFIX)]
    return objects + bound


def responder_writes(ns: Any) -> list[Any]:
    return [r for r in ns.writes() if r.resource in RESPONDER]


def assert_issued(acme: Stack, name: str, names: list[str]) -> None:
    certdir = acme.certdir(name)
    for part in ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"):
        assert (certdir / part).stat().st_size > 0
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(acme.root), "-untrusted",
                             str(certdir / "chain.pem"), str(certdir / "cert.pem")],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                           str(certdir / "cert.pem")], capture_output=True, text=True).stdout
    assert all(f"DNS:{n}" in text for n in names)


def stack_settings(acme: Stack) -> Settings:
    """The settings the hook uses, for preparing the appliance from the test."""
    return Settings(url=acme.ns.url, username=USER, password=PASSWORD,
                    tls_pin=acme.ns.cert_sha256, vserver=acme.env.get("NS_VSERVER"),
                    vserver_type=acme.env["NS_VSERVER_TYPE"])


def add_admin_policy(acme: Stack, name: str, rule: str, action: dict[str, Any],
                     priority: int) -> None:
    with open_client(stack_settings(acme)) as client:
        client.add("responderaction", {"name": f"{name}-act", **action})
        client.add("responderpolicy", {"name": name, "rule": rule, "action": f"{name}-act"})
        client.bind("lbvserver_responderpolicy_binding",
                    {"name": "web", "policyname": name, "priority": priority,
                     "gotopriorityexpression": "END"})


def use_bind_point(acme: Stack, kind: str) -> None:
    if kind == "cs":
        acme.ns.dataplane_vserver = "csweb"  # port-80 traffic now reaches the cs vserver
        acme.env.update(NS_VSERVER="csweb", NS_VSERVER_TYPE="cs")
    elif kind == "global":
        acme.env.pop("NS_VSERVER")
        acme.env["NS_VSERVER_TYPE"] = "global"


# -- issuance -----------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "count", "chain"), [
    ("lb", 1, "no"), ("lb", 3, "yes"),
    ("cs", 1, "yes"), ("cs", 3, "no"),
    ("global", 1, "no"), ("global", 3, "yes"),
])
def test_issues_and_leaves_no_challenge_objects(
    acme: Stack, kind: str, count: int, chain: str
) -> None:
    use_bind_point(acme, kind)
    names = ["www.example.test", "a.example.test", "b.example.test"][:count]
    result = acme.run_dehydrated("-c", *(a for n in names for a in ("-d", n)), hook_chain=chain)
    assert_issued(acme, names[0], names)
    served = {r.host for r in acme.ns.dataplane_requests if r.status == 200}
    assert served == set(names)
    assert leftovers(acme.ns) == []
    assert "pre-flight" not in result.stderr  # every challenge answered before the CA asked


def test_admins_policy_at_the_start_priority_is_untouched(acme: Stack) -> None:
    add_admin_policy(acme, "admin-block", 'HTTP.REQ.URL.STARTSWITH("/private")',
                     {"type": "respondwith", "target": '"HTTP/1.1 403 Forbidden\\r\\n\\r\\n"'},
                     priority=10)
    acme.run_dehydrated("-c", "-d", "www.example.test", "-d", "a.example.test",
                        hook_chain="yes")
    assert_issued(acme, "www.example.test", ["www.example.test", "a.example.test"])
    with acme.ns.state.lock:
        bound = [(b.policyname, b.priority) for b in acme.ns.state.bindings["lb:web"]]
    assert bound == [("admin-block", 10)]
    assert {o["name"] for o in acme.ns.objects("responderpolicy")} == {"admin-block"}
    assert leftovers(acme.ns) == []


def test_objects_left_by_a_killed_run_are_swept_by_the_next(acme: Stack) -> None:
    settings = stack_settings(acme)
    killed = [challenge.Challenge(f"old{i}.example.test", f"oldtoken{i}".ljust(43, "x"),
                                  f"{'oldtoken' + str(i):x<43}.thumb") for i in range(2)]
    with open_client(settings) as client:
        challenge.deploy(client, settings, killed)  # what a run killed mid-way leaves behind
    assert len(leftovers(acme.ns)) == 6
    acme.run_dehydrated("-c", "-d", "www.example.test")
    assert_issued(acme, "www.example.test", ["www.example.test"])
    assert leftovers(acme.ns) == []


# -- runs that must stop before the CA validates ------------------------------------------


def assert_stopped_before_validation(acme: Stack, result: subprocess.CompletedProcess[str],
                                     *expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Responding to challenge" not in output
    assert all(text in output for text in expected), output
    assert PASSWORD not in output


def test_wrong_vserver_name_stops_the_run(acme: Stack) -> None:
    acme.env["NS_VSERVER"] = "no-such-vserver"
    result = acme.run_dehydrated("-c", "-d", "www.example.test", check=False)
    assert_stopped_before_validation(acme, result, "no-such-vserver")
    assert acme.ns.dataplane_requests == []
    assert responder_writes(acme.ns) == []


def test_unreachable_appliance_stops_the_run(acme: Stack) -> None:
    acme.env["NS_URL"] = f"https://127.0.0.1:{closed_port()}"
    result = acme.run_dehydrated("-c", "-d", "www.example.test", check=False)
    assert_stopped_before_validation(acme, result, "could not reach the appliance")
    assert acme.ns.requests == []
    assert acme.ns.dataplane_requests == []


def test_disabled_responder_feature_stops_the_run(acme: Stack) -> None:
    acme.ns.set_feature("RESPONDER", False)
    result = acme.run_dehydrated("-c", "-d", "www.example.test", check=False)
    assert_stopped_before_validation(acme, result, "RESPONDER feature is disabled")
    assert acme.ns.dataplane_requests == []
    assert responder_writes(acme.ns) == []


def test_preflight_on_catches_a_shadowing_redirect(acme: Stack) -> None:
    add_admin_policy(acme, "admin-https-redirect", "true",
                     {"type": "redirect", "target": '"https://" + HTTP.REQ.HOSTNAME + '
                                                    'HTTP.REQ.URL'}, priority=5)
    acme.env["NS_PREFLIGHT"] = "on"
    result = acme.run_dehydrated("-c", "-d", "www.example.test", check=False)
    assert_stopped_before_validation(acme, result, "admin-https-redirect", "HTTP 302")
    assert len(acme.ns.dataplane_requests) == 1  # our own pre-flight probe, not the CA
    assert leftovers(acme.ns) == []


# -- the entry points without dehydrated --------------------------------------------------


def run_entry(argv: list[str], env: dict[str, str], cwd: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=60)


@pytest.fixture
def entry_env(ns: Any, tmp_path: Any) -> dict[str, str]:
    import os

    keep = {k: v for k, v in os.environ.items() if not k.startswith("NS_")}
    return {**keep, **hook_env(tmp_path, ns)}


@pytest.mark.parametrize("name", [
    "this_hookscript_is_broken__dehydrated_is_working_fine__please_ignore_unknown_hooks_in_your_script",
    "generate_csr", "sync_cert", "deploy_ocsp", "",
])
def test_hook_ignores_names_it_does_not_handle(
    ns: Any, entry_env: dict[str, str], tmp_path: Any, name: str
) -> None:
    result = run_entry([str(HOOK), name, "x"], {**entry_env, "NS_LE_PYTHON": "/bin/false"},
                       tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert ns.requests == []


def test_hook_through_a_symlink_from_elsewhere_propagates_failures(
    ns: Any, entry_env: dict[str, str], tmp_path: Any
) -> None:
    link = tmp_path / "bin" / "hook"
    link.parent.mkdir()
    link.symlink_to(HOOK)
    ok = run_entry([str(link), "deploy_challenge", "www.example.test", "tok1".ljust(43, "x"),
                    "tok1".ljust(43, "x") + ".thumb"], entry_env, tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert len(leftovers(ns)) == 3
    wildcard = run_entry([str(link), "deploy_challenge", "*.example.test", "tok2".ljust(43, "x"),
                          "tok2".ljust(43, "x") + ".thumb"], entry_env, tmp_path)
    assert wildcard.returncode == 7 and "wildcard" in wildcard.stderr
    assert len(leftovers(ns)) == 3


def test_clean_challenge_exits_0_even_when_the_appliance_is_gone(
    entry_env: dict[str, str], tmp_path: Any
) -> None:
    env = {**entry_env, "NS_URL": f"https://127.0.0.1:{closed_port()}"}
    result = run_entry([str(HOOK), "clean_challenge", "www.example.test", "t", "t.x"], env,
                       tmp_path)
    assert result.returncode == 0
    assert "WARNING" in result.stderr and "sweep" in result.stderr


def test_copytons_challenge_and_clean_keep_the_original_argument_order(
    ns: Any, entry_env: dict[str, str], tmp_path: Any
) -> None:
    copytons = str(REPO / "ns-copytons.py")
    token = "legacy".ljust(43, "x")
    deployed = run_entry([sys.executable, copytons, "challenge", token, f"{token}.thumb",
                          "www.example.test", "0"], entry_env, tmp_path)
    assert deployed.returncode == 0, deployed.stderr
    probe = challenge.probe(stack_settings_for(ns), challenge.Challenge(
        "www.example.test", token, f"{token}.thumb"))
    assert (probe.status, probe.body) == (200, f"{token}.thumb".encode())
    cleaned = run_entry([sys.executable, copytons, "clean", "www.example.test"], entry_env,
                        tmp_path)
    assert cleaned.returncode == 0, cleaned.stderr
    assert leftovers(ns) == []


def stack_settings_for(ns: Any) -> Settings:
    return Settings(url=ns.url, username=USER, password=PASSWORD, tls_pin=ns.cert_sha256,
                    vserver="web", preflight_address=f"127.0.0.1:{ns.dataplane_port}")


# -- clean_challenge queued for the next hook process (ns_letsencrypt/cleanqueue.py) ---------


def signing_run_env(entry_env: dict[str, str], basedir: Any, kind: str = "http-01"
                    ) -> dict[str, str]:
    """What dehydrated exports to its hooks during ``dehydrated -c``."""
    return {**entry_env, "COMMAND": "sign_domains", "CHALLENGETYPE": kind,
            "BASEDIR": str(basedir)}


def deploy_one(ns: Any, entry_env: dict[str, str], tmp_path: Any, tag: str) -> list[str]:
    token = tag.ljust(43, "x")
    args = [f"{tag}.example.test", token, f"{token}.thumb"]
    done = run_entry([str(HOOK), "deploy_challenge", *args], entry_env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(leftovers(ns)) == 3
    return args


def test_clean_challenge_of_a_signing_run_is_removed_by_the_next_hook_process(
    ns: Any, entry_env: dict[str, str], tmp_path: Any
) -> None:
    args = deploy_one(ns, entry_env, tmp_path, "queued")
    env = signing_run_env(entry_env, tmp_path)
    before = len(ns.requests)
    # NS_LE_PYTHON=/bin/false: exit 0 proves the call started no Python at all
    queued = run_entry([str(HOOK), "clean_challenge", *args],
                       {**env, "NS_LE_PYTHON": "/bin/false"}, tmp_path)
    assert (queued.returncode, queued.stdout, queued.stderr) == (0, "", "")
    queue = tmp_path / ".ns-letsencrypt-clean"
    assert queue.stat().st_mode & 0o777 == 0o600
    assert len(ns.requests) == before and len(leftovers(ns)) == 3

    ended = run_entry([str(HOOK), "exit_hook"], env, tmp_path)
    assert ended.returncode == 0, ended.stderr
    assert leftovers(ns) == [] and not queue.exists()


def test_dns01_and_calls_outside_a_signing_run_are_removed_at_once(
    ns: Any, entry_env: dict[str, str], tmp_path: Any
) -> None:
    args = deploy_one(ns, entry_env, tmp_path, "direct")
    for env in (entry_env, signing_run_env(entry_env, tmp_path, "dns-01")):
        started = run_entry([str(HOOK), "clean_challenge", *args],
                            {**env, "NS_LE_PYTHON": "/bin/false"}, tmp_path)
        assert started.returncode == 1  # Python was started (here: /bin/false)
    assert not (tmp_path / ".ns-letsencrypt-clean").exists()
    cleaned = run_entry([str(HOOK), "clean_challenge", *args], entry_env, tmp_path)
    assert cleaned.returncode == 0 and leftovers(ns) == []


def test_a_queue_left_by_a_killed_run_is_dropped_and_its_objects_swept(
    ns: Any, entry_env: dict[str, str], tmp_path: Any
) -> None:
    args = deploy_one(ns, entry_env, tmp_path, "killed")
    env = signing_run_env(entry_env, tmp_path)
    queued = run_entry([str(HOOK), "clean_challenge", *args], env, tmp_path)
    assert queued.returncode == 0  # ... and dehydrated was killed before its next hook
    started = run_entry([str(HOOK), "startup_hook"], env, tmp_path)
    assert started.returncode == 0, started.stderr
    assert leftovers(ns) == [] and not (tmp_path / ".ns-letsencrypt-clean").exists()
