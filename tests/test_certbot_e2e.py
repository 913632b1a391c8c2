"""End to end with real certbot: ``ns-letsencrypt certbot auth|cleanup|deploy`` as its hooks,
pebble as the CA, the fake NetScaler answering the challenges and serving the certificate.

The proof is what pebble's validation and a TLS client on the fake's VIP receive; the hook
calls on their own (as certbot's manual plugin runs them, one process per challenge) show the
batching: every call but the last costs no NITRO request.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.certbot_stack import CERTBOT, NS_LETSENCRYPT, Certbot
from tests.conftest import PASSWORD, closed_port
from tests.stack import Pebble, hook_env
from tests.test_bind_e2e import pem_serial
from tests.test_bindings import binding_writes
from tests.test_bindings import served_serial as served
from tests.test_deploy_e2e import bind, certkey, serial_of_pem, served_serial
from tests.test_hook_e2e import leftovers

needs_certbot = pytest.mark.skipif(CERTBOT is None, reason="certbot is not installed")


@pytest.fixture
def certbot(tmp_path: Path, pebble: Pebble, ns: Any) -> Certbot:
    return Certbot(tmp_path, pebble, ns)


def root_of(path: Path) -> Any:
    class Root:  # what test_bindings.served_serial needs of an issuer: its PEM
        pem = path.read_bytes()
    return Root()


def assert_quiet_hooks(result: subprocess.CompletedProcess[str]) -> None:
    """certbot turns any stderr of a hook into a warning: a good run writes none."""
    output = result.stdout + result.stderr
    assert "error output" not in output and "reported error code" not in output, output
    assert PASSWORD not in output


# -- issuance, deployment, renewal -------------------------------------------------------


@needs_certbot
def test_issuance_and_forced_renewal_serve_through_the_same_binding(certbot: Certbot) -> None:
    ns, names = certbot.ns, ["www.example.test", "a.example.test", "b.example.test"]
    result = certbot.issue(*names)
    assert_quiet_hooks(result)
    lineage = certbot.lineage("www.example.test")
    first = serial_of_pem(lineage / "cert.pem")
    assert certkey(ns, "le-www.example.test")["serial"].upper().lstrip("0") == first.lstrip("0")
    assert {r.host for r in ns.dataplane_requests if r.status == 200} == set(names)
    assert leftovers(ns) == [] and certbot.spooled() == []
    assert not ns.state.config_changed  # the deploy hook saved
    bind(ns, "le-www.example.test")
    assert served_serial(ns, certbot.root, "www.example.test") == first

    renewed = certbot.renew("www.example.test")  # the hooks stored in renewal/*.conf
    assert_quiet_hooks(renewed)
    second = serial_of_pem(lineage / "cert.pem")
    assert second != first
    assert served_serial(ns, certbot.root, "www.example.test") == second  # same binding
    assert leftovers(ns) == [] and certbot.spooled() == []
    assert not ns.state.config_changed


@needs_certbot
def test_ns_bind_names_a_lineage_and_renewal_keeps_the_binding(certbot: Certbot) -> None:
    ns, name = certbot.ns, "shop.example.test"
    ns.add_sslvserver("vs-shop")  # SNI disabled: the certificate becomes its default
    certbot.env["NS_BIND"] = "shop=vs-shop"  # certbot's --cert-name, as a dehydrated alias
    start = len(ns.requests)
    assert_quiet_hooks(certbot.issue(name, cert_name="shop"))
    lineage = certbot.lineage("shop")
    root = root_of(certbot.root)
    first = pem_serial(lineage / "cert.pem")
    assert ns.ssl_bindings("vs-shop") == [("le-shop", False)]
    assert served(ns, "vs-shop", root, name) == first  # no manual bind step
    assert binding_writes(ns, start) != []

    start = len(ns.requests)
    assert_quiet_hooks(certbot.renew("shop"))
    second = pem_serial(lineage / "cert.pem")
    assert second != first
    assert served(ns, "vs-shop", root, name) == second
    assert binding_writes(ns, start) == []  # renewed in place: bindings untouched


@needs_certbot
def test_failed_deploy_keeps_the_old_certificate_and_reconcile_repairs_it(
        certbot: Certbot) -> None:
    ns = certbot.ns
    certbot.issue("shop.example.test", cert_name="shop")  # the lineage name names the certkey
    bind(ns, "le-shop")
    old = serial_of_pem(certbot.lineage("shop") / "cert.pem")
    assert served_serial(ns, certbot.root, "shop.example.test") == old

    ns.inject(method="POST", resource="sslcertkey", action="update", kind="error", status=599,
              errorcode=1538, message="Certificate and private key do not match")
    result = certbot.renew("shop")
    output = result.stdout + result.stderr
    assert "reported error code 8" in output, output
    assert "ns-letsencrypt certbot: error: deploy failed at step 'update'" in output
    new = serial_of_pem(certbot.lineage("shop") / "cert.pem")
    assert new != old and served_serial(ns, certbot.root, "shop.example.test") == old

    repaired = certbot.ns_letsencrypt("reconcile", "--certbot-dir", str(certbot.config_dir))
    assert repaired.returncode == 0, repaired.stderr
    assert "shop: certkey le-shop updated" in repaired.stdout
    assert served_serial(ns, certbot.root, "shop.example.test") == new
    assert leftovers(ns) == [] and not ns.state.config_changed

    again = certbot.ns_letsencrypt("reconcile", "--certbot-dir", str(certbot.config_dir))
    assert (again.returncode, again.stdout) == (0, "")  # nothing left to do


# -- the hooks on their own, as certbot's manual plugin calls them --------------------------


def certbot_env(base: dict[str, str], names: list[str], index: int, salt: str = "tok",
                **extra: str) -> dict[str, str]:
    """The environment certbot gives the hook call of challenge ``index`` of ``names``."""
    token = f"{salt}{index}".ljust(43, "x")
    return {**base, "CERTBOT_DOMAIN": names[index], "CERTBOT_IDENTIFIER": names[index],
            "CERTBOT_VALIDATION": f"{token}.thumbprint", "CERTBOT_TOKEN": token,
            "CERTBOT_ALL_DOMAINS": ",".join(names), "CERTBOT_ALL_IDENTIFIERS": ",".join(names),
            "CERTBOT_REMAINING_CHALLENGES": str(len(names) - index - 1), **extra}


def run_hook(hook: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(NS_LETSENCRYPT), "certbot", hook], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=60)


@pytest.fixture
def base_env(ns: Any, tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("NS_", "CERTBOT_", "RENEWED_"))}
    return {**keep, **hook_env(tmp_path, ns), "TMPDIR": str(tmp_path)}


def test_auth_batches_and_the_last_cleanup_removes_everything(
        ns: Any, base_env: dict[str, str], tmp_path: Path) -> None:
    names = [f"n{i}.example.test" for i in range(5)]
    outputs, per_call = [], []
    for index in range(len(names)):
        before = len(ns.requests)
        result = run_hook("auth", certbot_env(base_env, names, index), tmp_path)
        assert (result.returncode, result.stderr) == (0, "")
        per_call.append(len(ns.requests) - before)
        outputs.append(result.stdout.strip())
    assert per_call[:-1] == [0, 0, 0, 0] and per_call[-1] <= 4  # dehydrated's budget: 4
    assert len(leftovers(ns)) == 15  # action, policy and binding of each name
    assert {r.host for r in ns.dataplane_requests if r.status == 200} == set(names)  # pre-flight

    cleaned = []
    for index in range(len(names)):
        before = len(ns.requests)
        env = certbot_env(base_env, names, index, CERTBOT_AUTH_OUTPUT=outputs[index])
        result = run_hook("cleanup", env, tmp_path)
        assert (result.returncode, result.stderr) == (0, "")
        cleaned.append(len(ns.requests) - before)
    assert cleaned[:-1] == [0, 0, 0, 0] and cleaned[-1] <= 3
    assert leftovers(ns) == []
    assert list(tmp_path.glob("ns-letsencrypt-certbot-*/*")) == []


def test_challenges_queued_by_a_run_that_died_are_dropped(
        ns: Any, base_env: dict[str, str], tmp_path: Path) -> None:
    names = ["www.example.test", "a.example.test", "b.example.test"]
    dead = run_hook("auth", certbot_env(base_env, names, 0, salt="dead"), tmp_path)
    assert dead.returncode == 0  # queued; then that certbot run was killed
    for index in range(3):  # the next run for the same names starts its countdown again
        assert run_hook("auth", certbot_env(base_env, names, index), tmp_path).returncode == 0
    served = {r.path.rsplit("/", 1)[-1] for r in ns.dataplane_requests if r.status == 200}
    assert served == {f"tok{i}".ljust(43, "x") for i in range(3)}
    assert len(leftovers(ns)) == 9


# -- failures: one line, the documented exit code, nothing sent or left -------------------


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and PASSWORD not in result.stderr
    return lines[0]


@pytest.mark.parametrize("hook", ["auth", "cleanup", "deploy"])
def test_a_hook_outside_certbot_says_so(
        ns: Any, base_env: dict[str, str], tmp_path: Path, hook: str) -> None:
    result = run_hook(hook, base_env, tmp_path)
    assert result.returncode == 2
    assert "not set" in one_line(result) and f"--{'deploy' if hook == 'deploy' else 'manual'}" \
        in result.stderr
    assert ns.requests == []


def test_auth_refuses_a_wildcard_before_anything_is_sent(
        ns: Any, base_env: dict[str, str], tmp_path: Path) -> None:
    env = certbot_env(base_env, ["*.example.test", "www.example.test"], 0)
    result = run_hook("auth", env, tmp_path)
    assert result.returncode == 7 and "wildcard" in one_line(result)
    assert ns.requests == []


def test_auth_dns01_asks_for_http01(ns: Any, base_env: dict[str, str], tmp_path: Path) -> None:
    env = certbot_env(base_env, ["www.example.test"], 0)
    del env["CERTBOT_TOKEN"]
    result = run_hook("auth", env, tmp_path)
    assert result.returncode == 2 and "--preferred-challenges http-01" in one_line(result)
    assert ns.requests == []


@pytest.mark.parametrize("hook", ["auth", "cleanup"])
def test_a_challenge_hook_with_the_appliance_unreachable(
        base_env: dict[str, str], tmp_path: Path, hook: str) -> None:
    env = certbot_env({**base_env, "NS_URL": f"https://127.0.0.1:{closed_port()}"},
                      ["www.example.test"], 0)
    result = run_hook(hook, env, tmp_path)
    assert result.returncode == 3 and "could not reach the appliance" in one_line(result)


def test_deploy_of_a_lineage_without_files(
        ns: Any, base_env: dict[str, str], tmp_path: Path) -> None:
    lineage = tmp_path / "live" / "www.example.test"
    lineage.mkdir(parents=True)
    result = run_hook("deploy", {**base_env, "RENEWED_LINEAGE": str(lineage)}, tmp_path)
    assert result.returncode == 2 and "cert.pem" in one_line(result)
    assert ns.requests == []


def test_reconcile_of_a_directory_without_lineages(
        ns: Any, base_env: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run([str(NS_LETSENCRYPT), "reconcile", "--certbot-dir",
                             str(tmp_path / "nothing")], capture_output=True, text=True,
                            env=base_env, timeout=60)
    assert result.returncode == 2 and "live does not exist" in one_line(result)
    assert ns.requests == []


def test_systemd_units_reconcile_certbot_daily(tmp_path: Path) -> None:
    import shutil

    from tests.stack import REPO

    service = (REPO / "systemd" / "ns-letsencrypt-certbot.service").read_text()
    timer = (REPO / "systemd" / "ns-letsencrypt-certbot.timer").read_text()
    assert "reconcile --certbot-dir /etc/letsencrypt" in service
    assert "OnCalendar=daily" in timer and "Persistent=true" in timer
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    (tmp_path / "ns-letsencrypt-certbot.service").write_text(
        service.replace("/opt/ns-letsencrypt", str(REPO)))
    (tmp_path / "ns-letsencrypt-certbot.timer").write_text(timer)
    result = subprocess.run(["systemd-analyze", "verify", "ns-letsencrypt-certbot.service",
                             "ns-letsencrypt-certbot.timer"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_reconcile_sweeps_stale_challenge_objects_only(
        ns: Any, base_env: dict[str, str], tmp_path: Path) -> None:
    import time

    from ns_letsencrypt import challenge
    from ns_letsencrypt.session import open_client
    from tests.test_hook_e2e import stack_settings_for

    settings = stack_settings_for(ns)
    old, fresh = (challenge.Challenge(f"{n}.example.test", n.ljust(43, "x"),
                                      n.ljust(43, "x") + ".thumb") for n in ("old", "fresh"))
    with open_client(settings) as client:
        challenge.deploy(client, settings, [old], now=time.time() - 3 * 3600)  # a killed run
        challenge.deploy(client, settings, [fresh])  # a certbot run validating right now
    (tmp_path / "letsencrypt" / "live").mkdir(parents=True)
    result = subprocess.run([str(NS_LETSENCRYPT), "reconcile", "--certbot-dir",
                             str(tmp_path / "letsencrypt")], capture_output=True, text=True,
                            env=base_env, timeout=60)
    assert result.returncode == 0, result.stderr
    names = challenge.object_names(settings, fresh.token)
    assert sorted(leftovers(ns)) == sorted([*names, f"bound:lb:web:{names[1]}"])
