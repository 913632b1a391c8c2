"""The lifecycle through the real ns-cronjob.sh: pebble + dehydrated + hooks/ns-hook.sh + the
fake NetScaler, with tests/ari_responder.py in front of pebble (Debian's pebble 2.4.0 has no
ARI) and a loopback json:// receiver for notifications.

- a certificate whose ARI window has opened is renewed by the next daily run, the other one is
  not; Retry-After holds the next question back; the metrics file parses with prometheus_client
  and its not_after is the deployed certificate's;
- a failed deploy sends exactly one message naming the certificate, success sends none, an
  unreachable receiver leaves the exit status as documented, no secret anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ns_letsencrypt.certs import read_certificate
from tests.ari_responder import AriResponder, window
from tests.conftest import PASSWORD, closed_port
from tests.receiver import JsonReceiver
from tests.stack import DEHYDRATED, write_config

REPO = Path(__file__).resolve().parent.parent
CRON = REPO / "ns-cronjob.sh"
TOKEN = "T0ken-e2e-77"


@pytest.fixture
def responder(acme: Any) -> Iterator[AriResponder]:
    pebble = acme.pebble
    with AriResponder(pebble.tls_cert, pebble.workdir / "key.pem",
                      upstream=pebble.directory) as server:
        yield server


def cron_home(acme: Any, ca: str, domains: str, **settings: str) -> tuple[Path, dict[str, str]]:
    """NS_LE_HOME with config.sh.example pointed at ``ca``, an account registered there."""
    home = Path(acme.env["NS_LE_HOME"])
    accountdir = acme.tmp / "accounts"
    stand_in = SimpleNamespace(directory=ca, tls_cert=acme.pebble.tls_cert)
    register = write_config(acme.tmp / "register", stand_in, hook=None,  # type: ignore[arg-type]
                            accountdir=accountdir)
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env.update(acme.env)
    env.update(settings)
    env["TMPDIR"] = str(acme.tmp)
    done = subprocess.run([DEHYDRATED, "--register", "--accept-terms", "-f", str(register)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    example = (REPO / "config.sh.example").read_text()
    (home / "config.sh").write_text(example + "\n# test stack\n" + "".join(
        f'{key}="{value}"\n' for key, value in {
            "CA": ca, "ACCOUNTDIR": str(accountdir),
            "HOOK": str(REPO / "hooks" / "ns-hook.sh"),
            "CURL_OPTS": f"--cacert {acme.pebble.tls_cert} --noproxy 127.0.0.1,localhost",
            "ACCOUNT_KEYSIZE": "2048"}.items()))
    (home / "domains.txt").write_text(domains)
    return home, env


def cron(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CRON)], env=env, capture_output=True, text=True, timeout=240)


def serial_of(home: Path, name: str) -> str:
    return read_certificate(home / "certs" / name / "cert.pem").serial


def served(ns: Any) -> dict[str, str]:
    return {ck["certkey"]: ck["serial"].lstrip("0") for ck in ns.certkeys() if "key" in ck}


def let_a_day_pass(home: Path) -> None:
    """Every stored Retry-After has passed, as between two daily runs."""
    path = home / "lifecycle-state.json"
    data = json.loads(path.read_text())
    for entry in data["ari"].values():
        entry["next_check"] = "2000-01-01T00:00:00Z"
    path.write_text(json.dumps(data))


def test_cron_renews_the_certificate_whose_ari_window_opened(
        acme: Any, ns: Any, responder: AriResponder, tmp_path: Path) -> None:
    metrics_file = tmp_path / "textfile" / "ns_letsencrypt.prom"
    metrics_file.parent.mkdir()
    with JsonReceiver() as receiver:
        home, env = cron_home(
            acme, responder.directory, "www.example.test\nshop.example.test\n",
            NS_METRICS_FILE=str(metrics_file),
            NS_NOTIFY=f"json://hook:{TOKEN}@127.0.0.1:{receiver.port}/n")
        responder.answer = lambda _id: window(20, 21, retry_after="7200")

        first = cron(env)  # issues both; ARI windows are weeks ahead

        assert first.returncode == 0, first.stdout + first.stderr
        assert len(responder.asked) == 2
        www, shop = serial_of(home, "www.example.test"), serial_of(home, "shop.example.test")
        shop_files = sorted((home / "certs" / "shop.example.test").glob("cert-*.pem"))
        www_id = json.loads((home / "lifecycle-state.json").read_text())["ari"][
            "www.example.test"]["id"]
        opened = window(-0.5, 0.5, explanation="https://ca.example/incident-42")
        responder.answer = lambda ident: opened if ident == www_id else window(20, 21)

        held_back = cron(env)  # Retry-After (2 h) has not passed: ARI is not asked again

        assert held_back.returncode == 0, held_back.stdout + held_back.stderr
        assert len(responder.asked) == 2
        assert serial_of(home, "www.example.test") == www

        let_a_day_pass(home)
        renewed = cron(env)

        assert renewed.returncode == 0, renewed.stdout + renewed.stderr
        assert "ARI: renewing now: www.example.test" in renewed.stdout
        assert "https://ca.example/incident-42" in renewed.stderr
        new_www = serial_of(home, "www.example.test")
        assert new_www != www
        assert serial_of(home, "shop.example.test") == shop
        assert sorted((home / "certs" / "shop.example.test").glob("cert-*.pem")) == shop_files
        assert served(ns)["le-www.example.test"] == new_www.lstrip("0")
        assert served(ns)["le-shop.example.test"] == shop.lstrip("0")
    assert receiver.messages == []  # successful runs notify nobody by default

    assert metrics_file.stat().st_mode & 0o777 == 0o644  # node_exporter runs as another user
    assert [p.name for p in metrics_file.parent.iterdir()] == [metrics_file.name]
    families = {f.name: f for f in text_string_to_metric_families(metrics_file.read_text())}
    not_after = {s.labels["certkey"]: s.value for s in
                 families["ns_letsencrypt_certificate_not_after_timestamp_seconds"].samples}
    deployed = read_certificate(home / "certs" / "www.example.test" / "cert.pem")
    assert not_after["le-www.example.test"] == deployed.not_after.timestamp()
    renewal = {s.labels["cert"] for s in
               families["ns_letsencrypt_certificate_renewal_timestamp_seconds"].samples}
    assert "shop.example.test" in renewal
    assert families["ns_letsencrypt_last_run_success"].samples[0].value == 1.0
    chain = {s.labels["certkey"]: s.value for s in
             families["ns_letsencrypt_certificate_chain_complete"].samples}
    assert chain == {"le-shop.example.test": 1.0, "le-www.example.test": 1.0}
    for output in (first, held_back, renewed):
        assert TOKEN not in output.stdout + output.stderr
        assert PASSWORD not in output.stdout + output.stderr


def test_a_failed_deploy_sends_one_message_naming_the_certificate(acme: Any, ns: Any) -> None:
    with JsonReceiver() as receiver:
        _home, env = cron_home(
            acme, acme.pebble.directory, "www.example.test\n",  # pebble itself: no ARI
            NS_NOTIFY=f"json://hook:{TOKEN}@127.0.0.1:{receiver.port}/n "
                      f"json://hook:{TOKEN}@127.0.0.1:{closed_port()}/gone")
        ns.inject(method="POST", resource="sslcertkey", kind="error", times=200, status=599,
                  errorcode=1538, message="Certificate and private key do not match")

        failed = cron(env)

        output = failed.stdout + failed.stderr
        assert failed.returncode != 0, output
        assert len(receiver.messages) == 1, receiver.messages
        message = receiver.messages[0]
        text = message["title"] + "\n" + message["message"]
        assert text.count("- www.example.test on 127.0.0.1:") == 1, text
        assert "step chain: www.example.test -> certkey le-www.example.test" in text
        assert "step " in text and "1538" in text
        assert "could not be delivered" in failed.stderr  # the unreachable second receiver

        again = cron(env)  # issued already: the run's reconciliation fails (8, as documented)

        assert again.returncode == 8, again.stdout + again.stderr
        assert "offers no renewalInfo; RENEW_DAYS decides" in again.stderr
        assert len(receiver.messages) == 2
    for text in [json.dumps(m) for m in receiver.messages] + [
            output, again.stdout + again.stderr]:
        assert PASSWORD not in text and TOKEN not in text
        assert "PRIVATE KEY" not in text
