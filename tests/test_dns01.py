"""The dns-01 pieces on their own, against real servers: the ADNS publisher against the fake
NetScaler (dnstxtrec over NITRO, its DNS data plane), the RFC 2136 publisher against a real BIND,
the propagation wait, the per-certificate challenge config, the state file, settings, names,
the command policy and ``cleanup``.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ns_letsencrypt import naming
from ns_letsencrypt.config import Settings, load_settings
from ns_letsencrypt.dns import certconfig, flow, open_publisher
from ns_letsencrypt.dns.base import Server, TxtRecord
from ns_letsencrypt.dns.state import StateFile
from ns_letsencrypt.dns.tsigkey import read_key_file
from ns_letsencrypt.dns.wait import wait_visible
from ns_letsencrypt.errors import ConfigError, DnsError, DnsNotReady
from ns_letsencrypt.policy import Scope, command_regex
from tests.conftest import PASSWORD, USER
from tests.dnsstack import Bind, bind_missing
from tests.stack import REPO

NAME = "_acme-challenge.example.test"
VALUES = ("A" * 43, "B" * 43)
needs_bind = pytest.mark.skipif(bind_missing() is not None, reason=str(bind_missing()))


def adns_settings(fake: Any, **extra: Any) -> Settings:
    return Settings(url=fake.url, username=USER, password=PASSWORD, tls_pin=fake.cert_sha256,
                    vserver="web", dns="adns", **extra)


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[Bind]:
    server = Bind(tmp_path / "bind").start()
    yield server
    server.stop()


def rfc2136_settings(bind: Bind, **extra: Any) -> Settings:
    return Settings(url="https://127.0.0.1:1", username=USER, password=PASSWORD, vserver="web",
                    dns="rfc2136", dns_server=bind.address,
                    dns_tsig_key_file=str(bind.key_file),
                    dns_nameservers=(bind.address,), **extra)


# -- ADNS -----------------------------------------------------------------------------------


def test_adns_wildcard_and_apex_values_live_side_by_side_and_go_one_by_one(fake: Any) -> None:
    fake.enable_adns(("example.test",))
    settings = adns_settings(fake, dns_wait=5.0)
    state = StateFile(Path(fake.cert_file).parent)
    flow.deploy(settings, [TxtRecord(NAME, VALUES[0])], state)
    flow.deploy(settings, [TxtRecord(NAME, VALUES[1])], state)
    assert fake.txt_records() == [(NAME, VALUES[0]), (NAME, VALUES[1])]
    assert flow.clean(settings, [TxtRecord(NAME, VALUES[0])], state) == []
    assert fake.txt_records() == [(NAME, VALUES[1])]  # the sibling stays
    deletes = [r for r in fake.writes() if r.resource == "dnstxtrec" and r.method == "DELETE"]
    assert deletes and all("recordid" in r.query.get("args", "") for r in deletes)
    assert [(e.name, e.value) for e in state.entries()] == [(NAME, VALUES[1])]


def test_adns_requests_per_hook_call_do_not_grow_with_the_names(fake: Any) -> None:
    fake.enable_adns(("example.test",))
    settings = adns_settings(fake, dns_wait=10.0)

    def requests_for(count: int) -> int:
        records = [TxtRecord(f"_acme-challenge.n{i}-{count}.example.test", VALUES[0])
                   for i in range(count)]
        before = len(fake.requests)
        state = StateFile(Path(fake.cert_file).parent)
        flow.deploy(settings, records, state)
        assert flow.clean(settings, records, state) == []
        return len(fake.requests) - before

    assert requests_for(2) == requests_for(20)
    assert fake.txt_records() == []


def test_adns_preflight_names_what_is_missing(fake: Any) -> None:
    settings = adns_settings(fake)
    with open_publisher(settings) as publisher, pytest.raises(DnsNotReady, match="no ADNS"):
        publisher.preflight([NAME])
    fake.enable_adns(("other.test",))
    with open_publisher(settings) as publisher, pytest.raises(
            DnsNotReady, match=f"not authoritative for {NAME}: no SOA"):
        publisher.preflight([NAME])
    assert fake.writes() == []


def test_adns_as_the_restricted_user_with_the_generated_policy(fake: Any) -> None:
    fake.enable_adns(("example.test",))
    regex = command_regex(Scope(vserver="web", adns=True))
    fake.add_user("acme", "acme-pw", policies=[("ALLOW", regex)])
    settings = dataclasses.replace(adns_settings(fake, dns_wait=5.0), username="acme",
                                   password="acme-pw")
    state = StateFile(Path(fake.cert_file).parent)
    with open_publisher(settings) as publisher:
        publisher.preflight([NAME])
    flow.deploy(settings, [TxtRecord(NAME, VALUES[0]), TxtRecord(NAME, VALUES[1])], state)
    assert flow.clean(settings, [TxtRecord(NAME, VALUES[0]), TxtRecord(NAME, VALUES[1])],
                      state) == []
    assert fake.txt_records() == []
    # without adns the policy allows no TXT record at all
    fake.add_user("web", "web-pw", policies=[("ALLOW", command_regex(Scope(vserver="web")))])
    denied = dataclasses.replace(settings, username="web", password="web-pw")
    with pytest.raises(DnsError, match=r"Not authorized to execute this command \[show dns"):
        flow.deploy(denied, [TxtRecord(NAME, VALUES[0])], state)
    assert state.entries() == []


# -- RFC 2136 -------------------------------------------------------------------------------


@needs_bind
def test_rfc2136_adds_and_deletes_exactly_one_value(bind: Bind, tmp_path: Path) -> None:
    settings = rfc2136_settings(bind, dns_wait=5.0)
    state = StateFile(tmp_path)
    flow.deploy(settings, [TxtRecord(NAME, VALUES[0]), TxtRecord(NAME, VALUES[1])], state)
    assert bind.txt(NAME) == set(VALUES)
    assert flow.clean(settings, [TxtRecord(NAME, VALUES[0])], state) == []
    assert bind.txt(NAME) == {VALUES[1]}
    assert flow.clean(settings, [TxtRecord(NAME, VALUES[1])], state) == []
    assert bind.all_txt() == [] and state.entries() == []


@needs_bind
def test_rfc2136_notauth_for_a_zone_the_server_does_not_serve(bind: Bind,
                                                               tmp_path: Path) -> None:
    settings = rfc2136_settings(bind, dns_zone="other.test")
    state = StateFile(tmp_path)
    with pytest.raises(DnsError, match="answered NOTAUTH"):
        flow.deploy(settings, [TxtRecord("_acme-challenge.other.test", VALUES[0])], state)
    assert state.entries() == []


@needs_bind
def test_rfc2136_preflight_finds_the_zone_and_checks_the_key(bind: Bind, tmp_path: Path,
                                                              caplog: Any) -> None:
    with open_publisher(rfc2136_settings(bind)) as publisher:
        publisher.preflight([NAME, "_acme-challenge.www.example.test"])
        assert publisher.zone_of(NAME) == "example.test"  # type: ignore[attr-defined]
    bind.key_file.chmod(0o644)
    with caplog.at_level(logging.WARNING), open_publisher(rfc2136_settings(bind)) as publisher:
        publisher.preflight([NAME])
    assert "readable by group or others" in caplog.text
    secret = bind.key_file.read_text().split('secret "')[1].split('"')[0]
    assert secret not in caplog.text


def test_wait_names_the_server_that_never_answers() -> None:
    silent = Server("127.0.0.1", _closed_udp_port(), "silent")
    with pytest.raises(DnsError, match=r"silent \(127\.0\.0\.1:\d+\) for " + NAME):
        wait_visible([TxtRecord(NAME, VALUES[0])], {NAME: [silent]}, timeout=1.0)


def _closed_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- key files, settings, names -------------------------------------------------------------


def test_key_file_problems_never_show_the_secret(tmp_path: Path) -> None:
    key = tmp_path / "k.conf"
    key.write_text('key "acme" { algorithm hmac-sha999; secret "c2VjcmV0LXZhbHVl"; };\n')
    with pytest.raises(ConfigError) as caught:
        read_key_file(key)
    assert "hmac-sha999" in str(caught.value) and "c2VjcmV0" not in str(caught.value)
    key.write_text('key "acme" { secret "c2VjcmV0LXZhbHVl"; };\n')
    parsed = read_key_file(key)
    assert parsed.algorithm == "hmac-sha256" and "c2VjcmV0" not in repr(parsed)
    # "//" and "#" inside the quoted secret are not comments; outside they are
    key.write_text('# by hand\nkey "k" { // ours\n algorithm hmac-sha512; '
                   'secret "ab//cd+/ef8="; }; /* end */\n')
    assert (read_key_file(key).secret, read_key_file(key).algorithm) == ("ab//cd+/ef8=",
                                                                         "hmac-sha512")


def test_settings_of_dns01_are_checked_together(tmp_path: Path) -> None:
    base = {"NS_URL": "https://127.0.0.1", "NS_USER": "u", "NS_PASSWORD": "p",
            "NS_VSERVER": "web"}
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={**base, "NS_DNS": "rfc2136", "NS_DNS_WAIT": "x"},
                      install_dir=tmp_path)
    text = str(caught.value)
    assert "NS_DNS_SERVER" in text and "NS_DNS_TSIG_KEY_FILE" in text and "NS_DNS_WAIT" in text
    with pytest.raises(ConfigError, match=r"NS_CHALLENGE.*needs NS_DNS"):
        load_settings(environ={**base, "NS_CHALLENGE": "dns-01"}, install_dir=tmp_path)
    settings = load_settings(environ={**base, "NS_DNS": "lexicon:cloudflare",
                                      "NS_DNS_NAMESERVERS": "127.0.0.1:53, 127.0.0.2"},
                             install_dir=tmp_path)
    assert settings.dns == "lexicon:cloudflare" and settings.dns_ttl == 60
    assert settings.dns_nameservers == ("127.0.0.1:53", "127.0.0.2")


def test_wildcard_certificates_get_valid_distinct_names() -> None:
    names = {naming.certkey_name("le-", n) for n in ("*.example.test", "example.test",
                                                     "star.example.test")}
    assert len(names) == 3
    assert all(naming.is_valid_name(n, 31) and "*" not in n for n in names)
    files = {naming.file_name(n, "0123abcd", "crt") for n in names}
    assert len(files) == 3 and not any("*" in f for f in files)


# -- per-certificate config -----------------------------------------------------------------


def test_certificate_configs_follow_domains_txt(tmp_path: Path) -> None:
    domains = tmp_path / "domains.txt"
    certs = tmp_path / "certs"
    domains.write_text("www.example.test\n*.example.test example.test > star\n"
                       "# *.commented.test\nmail.example.test > mail\n")
    (certs / "mail").mkdir(parents=True)
    (certs / "mail" / "config").write_text('KEY_ALGO="rsa"\nCHALLENGETYPE="http-01"\n')
    lines = certconfig.read_domains(domains)
    changed = certconfig.write_configs(lines, certs, "http-01")
    assert changed == [certs / "star" / "config"]
    assert 'CHALLENGETYPE="dns-01"' in (certs / "star" / "config").read_text()
    assert not (certs / "www.example.test" / "config").exists()
    # NS_CHALLENGE=dns-01: every line, except where the admin chose
    certconfig.write_configs(lines, certs, "dns-01")
    assert 'CHALLENGETYPE="dns-01"' in (certs / "www.example.test" / "config").read_text()
    assert (certs / "mail" / "config").read_text() == 'KEY_ALGO="rsa"\nCHALLENGETYPE="http-01"\n'
    # back to http-01: our line goes again, the file with it
    certconfig.write_configs(lines, certs, "http-01")
    assert (certs / "www.example.test" / "config").read_text() == ""
    domains.write_text("*.a.test b.test\n*.c.test\n")
    with pytest.raises(ConfigError) as caught:
        certconfig.read_domains(domains)
    assert caught.value.problems[0].endswith(
        "append '> star_a_test' (dehydrated names the certificate directory after the "
        "alias or the first name)")
    assert len(caught.value.problems) == 2


# -- state file and cleanup -----------------------------------------------------------------


def test_state_file_is_written_atomically_and_private(tmp_path: Path) -> None:
    state = StateFile(tmp_path)
    state.add("rfc2136", [TxtRecord(NAME, VALUES[0]), TxtRecord(NAME, VALUES[1])])
    state.add("rfc2136", [TxtRecord(NAME, VALUES[0])])
    assert len(state.entries()) == 2
    assert oct(state.path.stat().st_mode & 0o777) == "0o600"
    state.drop("rfc2136", [TxtRecord(NAME, VALUES[0])])
    assert [e.value for e in state.entries()] == [VALUES[1]]
    state.drop("rfc2136", [TxtRecord(NAME, VALUES[1])])
    assert not state.path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".dns-challenges.json.lock"]


def test_cleanup_lists_and_sweeps_leftover_values(fake: Any, tmp_path: Path) -> None:
    fake.enable_adns(("example.test",))
    home = tmp_path / "home"
    home.mkdir()
    settings = adns_settings(fake, dns_wait=5.0)
    flow.deploy(settings, [TxtRecord(NAME, VALUES[0])], StateFile(home))  # never cleaned
    env = {"PATH": "/usr/bin:/bin", "NS_LE_HOME": str(home), "NS_URL": fake.url,
           "NS_USER": USER, "NS_PASSWORD": PASSWORD, "NS_TLS_PIN": fake.cert_sha256,
           "NS_VSERVER": "web", "NS_DNS": "adns"}
    listed = subprocess.run([sys.executable, "-m", "ns_letsencrypt", "cleanup"], cwd=REPO,
                            env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert f"would remove dns-01 TXT value adns {NAME} {VALUES[0]}" in listed.stdout
    assert fake.txt_records() == [(NAME, VALUES[0])]
    removed = subprocess.run([sys.executable, "-m", "ns_letsencrypt", "cleanup", "--yes"],
                             cwd=REPO, env=env, capture_output=True, text=True)
    assert removed.returncode == 0, removed.stderr
    assert fake.txt_records() == [] and StateFile(home).entries() == []


# -- lexicon set-up errors ------------------------------------------------------------------


def test_lexicon_preflight_names_what_is_missing(monkeypatch: Any) -> None:
    base = Settings(url="https://127.0.0.1:1", username=USER, password=PASSWORD, vserver="web",
                    dns_zone="example.test")
    unknown = dataclasses.replace(base, dns="lexicon:nosuchprovider")
    monkeypatch.setenv("LEXICON_NOSUCHPROVIDER_AUTH_TOKEN", "x")
    with open_publisher(unknown) as publisher, pytest.raises(ConfigError) as caught:
        publisher.preflight([NAME])
    assert "pip install" in str(caught.value)
    no_credentials = dataclasses.replace(base, dns="lexicon:cloudflare")
    with open_publisher(no_credentials) as publisher, pytest.raises(
            ConfigError, match=r"no LEXICON_CLOUDFLARE_[*] variable"):
        publisher.preflight([NAME])
    with open_publisher(dataclasses.replace(base, dns="lexicon:ddns")) as publisher, \
            pytest.raises(ConfigError, match="use NS_DNS=rfc2136"):
        publisher.preflight([NAME])


# -- the hook script itself -----------------------------------------------------------------


def test_hook_dns01_path_without_ns_dns_is_one_config_error(fake: Any, tmp_path: Path) -> None:
    from tests.stack import HOOK, hook_env

    env = {**hook_env(tmp_path, fake), "PATH": "/usr/bin:/bin", "CHALLENGETYPE": "dns-01"}
    done = subprocess.run([str(HOOK), "deploy_challenge", "example.test", "tok", VALUES[0]],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "NS_DNS is not set" in lines[0]
    assert fake.writes() == []
    bad = subprocess.run([str(HOOK), "deploy_challenge", "example.test", "tok", "not base64!"],
                         env={**env, "NS_DNS": "adns"}, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 7 and "not base64url" in bad.stderr and fake.writes() == []
