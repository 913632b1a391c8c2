"""End to end for dns-01: real dehydrated + pebble + hooks/ns-hook.sh, answering through a real
BIND (RFC 2136 + TSIG) or the fake NetScaler's ADNS (dnstxtrec over NITRO, its DNS data plane).

pebble validates against the DNS server of each test (``-dnsserver``); a domains.txt line with a
wildcard makes the startup hook write ``certs/<alias>/config`` with ``CHALLENGETYPE="dns-01"``.
Each test checks the observable outcome: the certificate on the fake appliance, nothing left in
the zone, on the appliance or in the state file, and for failures a one-line error, no order
at the CA when the pre-flight can know, nothing left behind.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD
from tests.dnsstack import Bind, DnsPebble, PowerDns, bind_missing, powerdns_missing
from tests.stack import REPO, Stack

pytestmark = pytest.mark.skipif(bind_missing() is not None, reason=str(bind_missing()))

WILDCARD_LINE = "example.test *.example.test"


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[Bind]:
    server = Bind(tmp_path / "bind").start()
    yield server
    server.stop()


@contextlib.contextmanager
def dns_stack(tmp_path: Path, ns: Any, dns_port: int, dataplane_port: int) -> Iterator[Stack]:
    pebble = DnsPebble(tmp_path / "pebble", dataplane_port, dns_port)
    (tmp_path / "pebble").mkdir()
    pebble.start()
    try:
        yield Stack(tmp_path, pebble, ns)
    finally:
        pebble.stop()


@pytest.fixture
def rfc2136(tmp_path: Path, ns: Any, bind: Bind, dataplane_port: int) -> Iterator[Stack]:
    """A stack whose pebble asks BIND, with the hook set to NS_DNS=rfc2136."""
    with dns_stack(tmp_path, ns, bind.port, dataplane_port) as stack:
        stack.env.update(NS_DNS="rfc2136", NS_DNS_SERVER=bind.address,
                         NS_DNS_TSIG_KEY_FILE=str(bind.key_file),
                         NS_DNS_NAMESERVERS=bind.address, NS_DNS_WAIT="20")
        yield stack


@pytest.fixture
def adns(tmp_path: Path, ns: Any, dataplane_port: int) -> Iterator[Stack]:
    """A stack whose pebble asks the fake's ADNS, with the hook set to NS_DNS=adns."""
    port = ns.enable_adns(("example.test",))
    ns.add_dns_a("www.example.test")  # the http-01 name of the mixed run
    with dns_stack(tmp_path, ns, port, dataplane_port) as stack:
        stack.env.update(NS_DNS="adns", NS_DNS_WAIT="20")
        yield stack


def domains(stack: Stack, *lines: str) -> None:
    stack.basedir.mkdir(parents=True, exist_ok=True)
    (stack.basedir / "domains.txt").write_text("".join(f"{line}\n" for line in lines))


def deployed(ns: Any) -> list[str]:
    return sorted(str(ck["certkey"]) for ck in ns.certkeys()
                  if str(ck["certkey"]).startswith("le-") and ck.get("key"))


def state_left(stack: Stack) -> list[Any]:
    path = Path(stack.env["NS_LE_HOME"]) / ".dns-challenges.json"
    return json.loads(path.read_text())["values"] if path.exists() else []


def assert_certificate(stack: Stack, directory: str, names: list[str]) -> None:
    cert = stack.certdir(directory) / "cert.pem"
    text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                           str(cert)], capture_output=True, text=True, check=True).stdout
    assert all(f"DNS:{name}" in text for name in names), text


# -- issued and deployed --------------------------------------------------------------------


@pytest.mark.parametrize("hook_chain", ["yes", "no"])
def test_rfc2136_wildcard_and_apex_issued_and_deployed(rfc2136: Stack, bind: Bind,
                                                       hook_chain: str) -> None:
    domains(rfc2136, WILDCARD_LINE)
    result = rfc2136.run_dehydrated("-c", hook_chain=hook_chain)
    assert "CHALLENGETYPE = dns-01" in result.stdout
    assert_certificate(rfc2136, "example.test", ["example.test", "*.example.test"])
    assert deployed(rfc2136.ns), result.stdout + result.stderr
    assert bind.all_txt() == []  # both values removed, nothing else touched
    assert state_left(rfc2136) == []
    assert PASSWORD not in result.stdout + result.stderr


def test_adns_mixed_run_http01_and_wildcard(adns: Stack) -> None:
    domains(adns, "www.example.test", "*.example.test example.test > star_example_test")
    result = adns.run_dehydrated("-c", hook_chain="yes")
    assert_certificate(adns, "www.example.test", ["www.example.test"])
    assert_certificate(adns, "star_example_test", ["*.example.test", "example.test"])
    names = deployed(adns.ns)
    assert len(names) == 2 and not any("*" in n for n in names), names
    assert adns.ns.txt_records() == []
    assert not [o for o in adns.ns.objects("responderpolicy") if o["name"].startswith("le-acme")]
    assert state_left(adns) == []
    # only the wildcard certificate got a per-certificate config
    assert not (adns.certdir("www.example.test") / "config").exists()
    assert 'CHALLENGETYPE="dns-01"' in (adns.certdir("star_example_test") / "config").read_text()
    assert "error" not in result.stderr.lower()


# -- failures -------------------------------------------------------------------------------


def assert_stopped_before_ca(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """dehydrated stopped in the startup hook: no order, the one-line error shown."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Requesting new certificate order" not in output
    assert "startup_hook hook returned with non-zero exit code" in output
    for text in expected:
        assert text in output, output
    assert "Traceback" not in output
    return output


def test_wrong_tsig_key_stops_before_the_ca(rfc2136: Stack, bind: Bind, tmp_path: Path) -> None:
    # another key with the same name: a wrong secret
    wrong = tmp_path / "wrong-key.conf"
    wrong.write_bytes(subprocess.run(["tsig-keygen", "-a", "hmac-sha256", "acme-key"],
                                     check=True, capture_output=True).stdout)
    wrong.chmod(0o600)
    secret = wrong.read_text().split('secret "')[1].split('"')[0]
    domains(rfc2136, WILDCARD_LINE)
    result = rfc2136.run_dehydrated("-c", check=False,
                                    env={"NS_DNS_TSIG_KEY_FILE": str(wrong)})
    output = assert_stopped_before_ca(result, "TSIG key acme-key refused")
    assert secret not in output
    assert bind.all_txt() == [] and deployed(rfc2136.ns) == []


def test_refused_by_update_policy_removes_everything(tmp_path: Path, ns: Any,
                                                     dataplane_port: int) -> None:
    strict = Bind(tmp_path / "bind", policy="grant acme-key name other.example.test TXT;")
    strict.start()
    try:
        with dns_stack(tmp_path, ns, strict.port, dataplane_port) as stack:
            stack.env.update(NS_DNS="rfc2136", NS_DNS_SERVER=strict.address,
                             NS_DNS_TSIG_KEY_FILE=str(strict.key_file),
                             NS_DNS_NAMESERVERS=strict.address)
            domains(stack, WILDCARD_LINE)
            result = stack.run_dehydrated("-c", check=False, hook_chain="yes")
            output = result.stdout + result.stderr
            assert result.returncode != 0
            assert "the server answered REFUSED" in output and "update-policy" in output
            assert "Traceback" not in output
            assert strict.all_txt() == [] and deployed(ns) == []
            assert state_left(stack) == []
    finally:
        strict.stop()


def test_name_outside_the_zone_stops_before_the_ca(rfc2136: Stack) -> None:
    domains(rfc2136, "*.other.test > star_other")
    result = rfc2136.run_dehydrated("-c", check=False)
    assert_stopped_before_ca(result, "is not authoritative for any zone that holds "
                                     "_acme-challenge.other.test")


def test_outside_configured_zone_is_a_config_error(rfc2136: Stack) -> None:
    domains(rfc2136, "*.other.test > star_other")
    result = rfc2136.run_dehydrated("-c", check=False, env={"NS_DNS_ZONE": "example.test"})
    assert_stopped_before_ca(result, "_acme-challenge.other.test is outside "
                                     "NS_DNS_ZONE=example.test")


def test_a_server_that_never_shows_the_value_is_named(rfc2136: Stack, bind: Bind) -> None:
    domains(rfc2136, WILDCARD_LINE)
    rfc2136.run_dehydrated("-c", hook_chain="yes")  # the certificate the renewal must keep
    before = deployed(rfc2136.ns)
    files_before = rfc2136.ns.files()
    lagging = rfc2136.ns.enable_adns(("example.test",))  # authoritative, never updated
    result = rfc2136.run_dehydrated(
        "-c", "--force", check=False, hook_chain="yes",
        env={"NS_DNS_NAMESERVERS": f"{bind.address} 127.0.0.1:{lagging}", "NS_DNS_WAIT": "2"})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"127.0.0.1:{lagging} for _acme-challenge.example.test: 2 of 2 value(s) missing" \
        in output, output
    assert "NS_DNS_WAIT" in output and "Traceback" not in output
    assert bind.all_txt() == [] and state_left(rfc2136) == []
    assert deployed(rfc2136.ns) == before and rfc2136.ns.files() == files_before


def test_appliance_not_authoritative_stops_before_the_ca(tmp_path: Path, ns: Any,
                                                         dataplane_port: int) -> None:
    port = ns.enable_adns(("other.test",))
    with dns_stack(tmp_path, ns, port, dataplane_port) as stack:
        stack.env.update(NS_DNS="adns")
        domains(stack, WILDCARD_LINE)
        result = stack.run_dehydrated("-c", check=False)
        assert_stopped_before_ca(result, "this NetScaler is not authoritative for "
                                         "_acme-challenge.example.test")
        assert ns.txt_records() == [] and deployed(ns) == []
        assert not (stack.certdir("example.test") / "config").exists()  # nothing written


def test_wildcard_first_without_alias_names_the_fix(adns: Stack) -> None:
    domains(adns, "*.example.test example.test")
    result = adns.run_dehydrated("-c", check=False)
    assert_stopped_before_ca(result, "append '> star_example_test'")


def test_cli_test_reports_the_dns_preflight(adns: Stack, tmp_path: Path) -> None:
    home = Path(adns.env["NS_LE_HOME"])
    (home / "domains.txt").write_text("*.example.test > star\n")
    env = {**adns.env, "NS_LE_HOME": str(home)}
    ok = subprocess.run([sys.executable, "-m", "ns_letsencrypt", "test"], cwd=REPO, env=env,
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "dns-01" in ok.stdout, ok.stdout + ok.stderr
    (home / "domains.txt").write_text("*.other.test > star\n")
    bad = subprocess.run([sys.executable, "-m", "ns_letsencrypt", "test"], cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 6, bad.stdout + bad.stderr
    assert "not authoritative for _acme-challenge.other.test" in bad.stdout


# -- lexicon: its powerdns provider against a real PowerDNS (HTTP API) ----------------------


@pytest.mark.skipif(powerdns_missing() is not None, reason=str(powerdns_missing()))
def test_lexicon_powerdns_wildcard_issued_and_deployed(tmp_path: Path, ns: Any,
                                                       dataplane_port: int) -> None:
    pdns = PowerDns(tmp_path / "pdns").start()
    try:
        with dns_stack(tmp_path, ns, pdns.port, dataplane_port) as stack:
            stack.env.update(NS_DNS="lexicon:powerdns", NS_DNS_NAMESERVERS=pdns.address,
                             NS_DNS_WAIT="20", **pdns.lexicon_env())
            domains(stack, WILDCARD_LINE)
            result = stack.run_dehydrated("-c", hook_chain="no")
            assert_certificate(stack, "example.test", ["example.test", "*.example.test"])
            assert deployed(ns) and pdns.all_txt() == [] and state_left(stack) == []
            assert pdns.lexicon_env()["LEXICON_POWERDNS_AUTH_TOKEN"] not in (
                result.stdout + result.stderr)
            # without lexicon's credentials the pre-flight stops before the CA
            env = {k: "" for k in pdns.lexicon_env()}
            missing = stack.run_dehydrated("-c", "--force", check=False, env=env)
            assert_stopped_before_ca(missing, "no credentials: no LEXICON_POWERDNS_* variable")
    finally:
        pdns.stop()
