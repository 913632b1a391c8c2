"""The lifecycle package in one process: ARI (against tests/ari_responder.py), the ``ca``
command, ``run-end``'s notifications (to a loopback json:// receiver) and metrics.

The cron-driven end-to-end cases (real dehydrated, pebble, the fake) are in
test_lifecycle_e2e.py.
"""

from __future__ import annotations

import datetime
import json
import subprocess
from collections.abc import Iterator
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from prometheus_client.parser import text_string_to_metric_families

from ns_letsencrypt import cli
from ns_letsencrypt.lifecycle import ari, metrics, notify
from ns_letsencrypt.lifecycle.inventory import Deployed
from tests import pki
from tests.ari_responder import AriResponder, window
from tests.conftest import PASSWORD
from tests.receiver import JsonReceiver

NOW = datetime.datetime.now(datetime.timezone.utc)
UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


@pytest.fixture
def responder(tls: tuple[Path, Path]) -> Iterator[AriResponder]:
    with AriResponder(*tls) as server:
        yield server


@pytest.fixture
def home(tmp_path: Path, responder: AriResponder, tls: tuple[Path, Path],
         monkeypatch: pytest.MonkeyPatch) -> Path:
    """An install dir with config.sh at the responder, two issued certificates."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.sh").write_text(f'CA="{responder.directory}"\n'
                                    f'CURL_OPTS="--cacert {tls[0]} --noproxy 127.0.0.1"\n')
    (home / "domains.txt").write_text("www.example.test\nshop.example.test > shop\n")
    hierarchy = pki.make_hierarchy()
    for name, directory in (("www.example.test", "www.example.test"),
                            ("shop.example.test", "shop")):
        pki.write_cert_dir(home / "certs" / directory, pki.make_leaf(hierarchy.issuer, [name]),
                           hierarchy)
    for key, value in {"NS_LE_HOME": str(home), "NS_URL": "https://127.0.0.1:9",
                       "NS_USER": "nsroot", "NS_PASSWORD": PASSWORD,
                       "NS_VSERVER_TYPE": "global"}.items():
        monkeypatch.setenv(key, value)
    return home


def identifier(home: Path, directory: str) -> str:
    cert = x509.load_pem_x509_certificate((home / "certs" / directory / "cert.pem").read_bytes())
    return ari.cert_identifier(cert)


def answers(home: Path, **by_dir: Any) -> Any:
    ids = {identifier(home, d.replace("_", ".")): a for d, a in by_dir.items()}
    return lambda ident: ids.get(ident, (404, {}, b""))


def run_ari(capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli.main(["ari", "--due"])
    out = capsys.readouterr()
    return status, out.out, out.err


def state(home: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((home / "lifecycle-state.json").read_text())
    return data


def let_time_pass(home: Path) -> None:
    """Every stored Retry-After has passed (what a day between two runs does)."""
    data = state(home)
    for entry in data["ari"].values():
        entry["next_check"] = "2000-01-01T00:00:00Z"
    (home / "lifecycle-state.json").write_text(json.dumps(data))


# -- the identifier and Retry-After ---------------------------------------------------------


def test_identifier_is_rfc_9773_appendix_a() -> None:
    key = pki.new_key()
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(x509.Name([]))
            .public_key(key.public_key())
            .serial_number(0x87654321)  # top bit set: the identifier keeps the 0x00 byte
            .not_valid_before(NOW).not_valid_after(NOW + datetime.timedelta(days=1))
            .add_extension(x509.AuthorityKeyIdentifier(aki, None, None), critical=False)
            .sign(key, hashes.SHA256()))

    assert ari.cert_identifier(cert) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


@pytest.mark.parametrize(("header", "seconds"), [
    ("5", 60), ("3600", 3600), ("999999", 86400), (None, 6 * 3600), ("soon", 6 * 3600),
    (format_datetime(NOW + datetime.timedelta(hours=2), usegmt=True), 7200),
])
def test_retry_after_is_clamped_to_a_minute_and_a_day(header: Any, seconds: int) -> None:
    delay = ari.retry_after_delay(header, NOW.replace(microsecond=0))

    assert abs(delay.total_seconds() - seconds) <= 1


# -- ari --due ----------------------------------------------------------------------------


def test_due_when_the_window_has_opened_not_when_it_is_ahead(
        home: Path, responder: AriResponder, capsys: pytest.CaptureFixture[str]) -> None:
    responder.answer = answers(home, www_example_test=window(
        -0.1, 0.1, explanation="https://ca.example/incident"), shop=window(20, 21))

    status, out, err = run_ari(capsys)

    assert status == 0
    assert out == "www.example.test\n"  # the line as dehydrated reads it: shop is not due
    assert "explanation: https://ca.example/incident" in err
    entries = state(home)["ari"]
    assert set(entries) == {"www.example.test", "shop"}
    assert [p.name for p in home.glob(".lifecycle-state.json.*")] == []  # renamed into place
    assert (home / "lifecycle-state.json").stat().st_mode & 0o077 == 0
    for entry in entries.values():
        start, end = entry["window"]
        assert start <= entry["renew_at"] <= end


def test_the_choice_is_kept_until_the_window_changes(
        home: Path, responder: AriResponder, capsys: pytest.CaptureFixture[str]) -> None:
    responder.answer = answers(home, www_example_test=window(20, 30), shop=window(20, 30))
    run_ari(capsys)
    chosen = {name: entry["renew_at"] for name, entry in state(home)["ari"].items()}
    let_time_pass(home)

    run_ari(capsys)  # the same windows
    assert {n: e["renew_at"] for n, e in state(home)["ari"].items()} == chosen

    responder.answer = answers(home, www_example_test=window(40, 50), shop=window(20, 30))
    let_time_pass(home)
    run_ari(capsys)
    entries = state(home)["ari"]
    assert entries["shop"]["renew_at"] == chosen["shop"]
    assert entries["www.example.test"]["renew_at"] >= entries["www.example.test"]["window"][0]
    assert entries["www.example.test"]["renew_at"] != chosen["www.example.test"]


def test_retry_after_is_honoured(home: Path, responder: AriResponder,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    responder.answer = answers(home, www_example_test=window(20, 21, retry_after="7200"),
                               shop=window(20, 21, retry_after="7200"))
    run_ari(capsys)
    assert len(responder.asked) == 2
    responder.answer = answers(home, www_example_test=window(-1, 0.5),
                               shop=window(20, 21))

    status, out, err = run_ari(capsys)

    assert (status, out) == (0, "")  # not asked again before Retry-After: nothing due
    assert len(responder.asked) == 2
    assert "Retry-After" in err
    let_time_pass(home)
    assert run_ari(capsys)[1] == "www.example.test\n"
    assert len(responder.asked) == 4


@pytest.mark.parametrize(("answer", "logged"), [
    ((500, {}, b"oops"), "HTTP 500"),
    ((200, {}, b"{not json"), "not JSON"),
    (window(2, 1), "ends"),  # end before start
    ((200, {}, b'{"suggestedWindow": {"start": "yesterday"}}'), "RFC 3339"),
])
def test_a_broken_answer_is_logged_and_ignored(
        home: Path, responder: AriResponder, capsys: pytest.CaptureFixture[str],
        answer: Any, logged: str) -> None:
    responder.answer = answers(home, www_example_test=window(20, 21), shop=window(20, 21))
    run_ari(capsys)
    before = state(home)["ari"]
    let_time_pass(home)
    responder.answer = lambda _id: answer

    status, out, err = run_ari(capsys)

    assert (status, out) == (0, "")
    assert logged in err and "ignored (RENEW_DAYS decides" in err
    assert "Traceback" not in err
    after = state(home)["ari"]
    assert {n: e["renew_at"] for n, e in after.items()} == {
        n: e["renew_at"] for n, e in before.items()}  # the earlier choice stands


def test_retry_after_of_an_error_answer_is_honoured_too(
        home: Path, responder: AriResponder, capsys: pytest.CaptureFixture[str]) -> None:
    responder.answer = lambda _id: (503, {"Retry-After": "600"}, b"busy")
    assert run_ari(capsys)[:2] == (0, "")
    assert len(responder.asked) == 2

    responder.answer = lambda _id: window(-1, 0.5)
    assert run_ari(capsys)[:2] == (0, "")
    assert len(responder.asked) == 2  # not asked again within the 10 minutes


def test_a_ca_without_renewal_info_changes_nothing(
        home: Path, responder: AriResponder, capsys: pytest.CaptureFixture[str]) -> None:
    responder.offer_ari = False
    responder.answer = lambda _id: window(-1, 0.5)

    status, out, err = run_ari(capsys)

    assert (status, out, responder.asked) == (0, "", [])
    assert "offers no renewalInfo; RENEW_DAYS decides" in err


def test_ns_ari_off_asks_nothing(home: Path, responder: AriResponder,
                                 capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NS_ARI", "off")
    responder.answer = lambda _id: window(-1, 0.5)

    assert run_ari(capsys)[:2] == (0, "")
    assert responder.asked == []


# -- ca -----------------------------------------------------------------------------------


def test_ca_prints_profiles_ari_eab_and_terms(home: Path, responder: AriResponder,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    responder.meta = {"profiles": {"classic": "90 days", "tlsserver": "45 days, no CN",
                                   "shortlived": "160 hours"},
                      "externalAccountRequired": True, "termsOfService": "https://ca/tos"}
    with open(home / "config.sh", "a") as config:
        config.write('ACME_PROFILE="tlsserver"\nEAB_KID="kid-1"\nEAB_HMAC_KEY="hmac-SECRET"\n')

    assert cli.main(["ca", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert sorted(info["profiles"]) == ["classic", "shortlived", "tlsserver"]
    assert info["ari"] is True and info["eab_required"] is True
    assert info["terms_of_service"] == "https://ca/tos"
    assert (info["configured_profile"], info["eab_configured"]) == ("tlsserver", True)

    assert cli.main(["ca"]) == 0
    out = capsys.readouterr()
    assert "tlsserver" in out.out and "EAB required" in out.out
    assert "hmac-SECRET" not in out.out + out.err

    responder.offer_ari = False
    with open(home / "config.sh", "a") as config:
        config.write('ACME_PROFILE="tlsclient"\n')
    assert cli.main(["ca"]) == 2  # a profile the CA does not offer
    out = capsys.readouterr()
    assert "not offered" in out.out and "ACME_PROFILE=tlsclient is not one of" in out.err


def test_ca_unreachable_is_a_clear_error(home: Path, responder: AriResponder,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (home / "config.sh").write_text(f'CA="{responder.directory}"\n')  # no --cacert: untrusted

    assert cli.main(["ca"]) == 3  # the CA could not be reached (its TLS is not trusted)
    err = capsys.readouterr().err
    assert "GET " + responder.directory in err and "CURL_OPTS" in err
    assert "Traceback" not in err


# -- run-end: notifications and metrics -----------------------------------------------------


def run_end(status: int, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    result = cli.main(["run-end", "--exit-status", str(status), "--certs-dir", "/nonexistent"])
    return result, capsys.readouterr().err


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "run"
    directory.mkdir()
    monkeypatch.setenv("NS_LE_RUN_DIR", str(directory))
    (directory / "inventory.json").write_text("[]")  # what reconcile left: no certificates
    return directory


def note_failure(run_dir: Path) -> None:
    with open(run_dir / "journal.jsonl", "a") as journal:
        journal.write(json.dumps({"event": "failure", "cert": "www.example.test",
                                  "target": "10.0.0.5", "step": "upload certificate",
                                  "error": f"refused ({PASSWORD})", "hint": "check rights"})
                      + "\n")


def test_a_failed_run_sends_one_message_naming_the_certificate(
        home: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    note_failure(run_dir)
    with JsonReceiver() as receiver:
        secret_url = f"json://hookuser:T0ken-zz9@127.0.0.1:{receiver.port}/notify"
        monkeypatch.setenv("NS_NOTIFY", secret_url)

        status, err = run_end(8, capsys)

    assert status == 0
    assert len(receiver.messages) == 1, err
    message = receiver.messages[0]
    text = message["title"] + message["message"]
    assert "www.example.test on 10.0.0.5: step upload certificate" in text
    assert "(hint: check rights)" in text
    assert PASSWORD not in text and "T0ken-zz9" not in text
    assert "T0ken-zz9" not in err and PASSWORD not in err
    assert state(home)["last_run"]["success"] is False


def test_success_sends_nothing_by_default(home: Path, run_dir: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with open(run_dir / "journal.jsonl", "a") as journal:
        journal.write(json.dumps({"event": "deployed", "cert": "www.example.test",
                                  "target": "10.0.0.5", "certkey": "le-www", "serial": "AB"})
                      + "\n")
    with JsonReceiver() as receiver:
        monkeypatch.setenv("NS_NOTIFY", f"json://127.0.0.1:{receiver.port}/")
        assert run_end(0, capsys)[0] == 0
        assert receiver.messages == []
        monkeypatch.setenv("NS_NOTIFY_ON", "failure,renewal")
        assert run_end(0, capsys)[0] == 0
    assert len(receiver.messages) == 1
    assert "le-www" in receiver.messages[0]["message"]


def test_an_unreachable_receiver_is_logged_and_changes_nothing(
        home: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import closed_port

    note_failure(run_dir)
    monkeypatch.setenv("NS_NOTIFY", f"json://user:T0ken-zz9@127.0.0.1:{closed_port()}/x")

    status, err = run_end(8, capsys)

    assert status == 0
    assert "could not be delivered" in err
    assert "T0ken-zz9" not in err and "127.0.0.1" not in err


def test_a_bad_notify_url_is_a_config_error_without_the_url(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NS_NOTIFY", "json://ok.example/ not-a-url-T0ken-zz9")

    assert cli.main(["ari"]) == 2
    err = capsys.readouterr().err
    assert "NS_NOTIFY" in err and "entry 2" in err and "T0ken-zz9" not in err


def deployed(lifetime_days: float, left_days: float, serial: str = "01") -> Deployed:
    now = NOW.timestamp()
    return Deployed("le-www", "www.example.test", "10.0.0.5", serial,
                    now + (left_days - lifetime_days) * 86400, now + left_days * 86400, True)


def test_expiry_is_announced_below_a_third_and_again_below_a_sixth() -> None:
    notified: dict[str, Any] = {}
    now = NOW.timestamp()

    assert notify.expiry_news([deployed(45, 20)], notified, now) == []
    assert [lvl for _, lvl in notify.expiry_news([deployed(45, 14)], notified, now)] == [1]
    assert notify.expiry_news([deployed(45, 13)], notified, now) == []  # said once
    assert [lvl for _, lvl in notify.expiry_news([deployed(45, 7)], notified, now)] == [2]
    assert notify.expiry_news([deployed(45, 6)], notified, now) == []
    # a new certificate (another serial) starts over
    assert notify.expiry_news([deployed(45, 44, serial="02")], notified, now) == []
    assert [lvl for _, lvl in notify.expiry_news([deployed(6, 0.9, "02")], notified, now)] == [2]


def test_metrics_parse_with_prometheus_clients_own_parser() -> None:
    row = deployed(45, 30)
    reg = metrics.registry([row, Deployed("le-x", "", "10.0.0.5", "02", None, None, False)],
                           {"www.example.test": 1_900_000_000.0},
                           {"end": 1_800_000_000.0, "success": True})

    families = {f.name: f for f in text_string_to_metric_families(metrics.render(reg))}

    not_after = families["ns_letsencrypt_certificate_not_after_timestamp_seconds"].samples
    assert [(s.labels, s.value) for s in not_after] == [
        ({"certkey": "le-www", "cert": "www.example.test", "target": "10.0.0.5"},
         row.not_after)]
    renewal = families["ns_letsencrypt_certificate_renewal_timestamp_seconds"].samples
    assert [s.value for s in renewal] == [1_900_000_000.0]
    chain = {s.labels["certkey"]: s.value
             for s in families["ns_letsencrypt_certificate_chain_complete"].samples}
    assert chain == {"le-www": 1.0, "le-x": 0.0}
    assert families["ns_letsencrypt_last_run_success"].samples[0].value == 1.0
    assert families["ns_letsencrypt_last_run_end_timestamp_seconds"].samples[0].value == (
        1_800_000_000.0)


# -- certificates without a CN (tlsserver, shortlived) ---------------------------------------


def test_certificates_without_a_cn_deploy_renew_and_show_up_by_their_names(
        fake: Any, tmp_path: Path) -> None:
    from ns_letsencrypt import deploy
    from ns_letsencrypt.lifecycle import inventory
    from ns_letsencrypt.session import open_client
    from tests.conftest import fake_settings

    hierarchy = pki.make_hierarchy()
    settings = fake_settings(fake)
    certs_dir = tmp_path / "certs"
    for number, with_cn in enumerate((True, False, False)):  # classic, then tlsserver twice
        leaf = pki.make_leaf(hierarchy.issuer, ["www.example.com", "example.com"],
                             common_name=with_cn)
        files = pki.write_cert_dir(certs_dir / "www.example.com", leaf, hierarchy)
        with open_client(settings) as client:
            result = deploy.deploy_cert(client, settings, "www.example.com", str(files["key"]),
                                        str(files["cert"]), str(files["chain"]))
            rows = inventory.read(client, settings, certs_dir)
        assert result.certkey == "le-www.example.com", number
        assert [(r.certkey, r.cert, r.serial.lstrip("0")) for r in rows] == [
            ("le-www.example.com", "www.example.com",
             format(leaf.cert.serial_number, "X").lstrip("0"))]
        assert rows[0].chain_complete


def test_status_prometheus_prints_the_metrics_of_the_appliance(
        fake: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from ns_letsencrypt import deploy
    from ns_letsencrypt.session import open_client
    from tests.conftest import USER, fake_settings

    hierarchy = pki.make_hierarchy()
    leaf = pki.make_leaf(hierarchy.issuer, ["www.example.com"], common_name=False)
    certs_dir = tmp_path / "certs"
    files = pki.write_cert_dir(certs_dir / "www.example.com", leaf, hierarchy)
    settings = fake_settings(fake)
    with open_client(settings) as client:
        deploy.deploy_cert(client, settings, "www.example.com", str(files["key"]),
                           str(files["cert"]), str(files["chain"]))
    home = tmp_path / "home"
    home.mkdir()
    (home / "lifecycle-state.json").write_text(json.dumps({
        "version": 1, "ari": {"www.example.com": {"id": "x", "renew_at": "2031-01-02T03:04:05Z"}},
        "last_run": {"end": 1_800_000_000, "success": False}}))
    for key, value in {"NS_LE_HOME": str(home), "NS_URL": fake.url, "NS_USER": USER,
                       "NS_PASSWORD": PASSWORD, "NS_TLS_PIN": fake.cert_sha256,
                       "NS_VSERVER": "web"}.items():
        monkeypatch.setenv(key, value)

    assert cli.main(["status", "--prometheus", "--certs-dir", str(certs_dir)]) == 0

    text = capsys.readouterr().out
    families = {f.name: f for f in text_string_to_metric_families(text)}
    [not_after] = families["ns_letsencrypt_certificate_not_after_timestamp_seconds"].samples
    assert not_after.labels == {"certkey": "le-www.example.com", "cert": "www.example.com",
                                "target": fake.url.split("://")[1]}
    assert not_after.value == leaf.cert.not_valid_after_utc.timestamp()
    [renewal] = families["ns_letsencrypt_certificate_renewal_timestamp_seconds"].samples
    assert renewal.value == datetime.datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert families["ns_letsencrypt_last_run_success"].samples[0].value == 0.0
