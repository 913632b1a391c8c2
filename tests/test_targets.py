"""NS_TARGETS through the CLI against two independent fakes: bad input, `test`, `status`, and a
challenge that one target refuses. End-to-end issuance is in test_targets_e2e.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ns_letsencrypt import cli
from tests.conftest import PASSWORD, USER
from tests.fakens import FakeNetScaler

TRIPLE = ["www.example.com", "tok-123", "tok-123.thumbprint"]


@pytest.fixture
def fakes() -> Iterator[tuple[FakeNetScaler, FakeNetScaler]]:
    with FakeNetScaler(users={USER: PASSWORD}) as dc1, \
            FakeNetScaler(users={USER: PASSWORD}) as dc2:
        dc1.add_lbvserver("web")
        dc2.add_lbvserver("web2")
        yield dc1, dc2


@pytest.fixture
def env(fakes: tuple[FakeNetScaler, FakeNetScaler], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    dc1, dc2 = fakes
    password = tmp_path / "pw"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    values = {
        "NS_LE_HOME": str(tmp_path), "NS_USER": USER, "NS_PASSWORD_FILE": str(password),
        "NS_VSERVER": "web", "NS_TIMEOUT": "5,10", "NS_PREFLIGHT": "off",
        "NS_TARGETS": "dc1 dc2",
        "NS_DC1_URL": dc1.url, "NS_DC1_TLS_PIN": dc1.cert_sha256,
        "NS_DC2_URL": dc2.url, "NS_DC2_TLS_PIN": dc2.cert_sha256, "NS_DC2_VSERVER": "web2",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and PASSWORD not in out + err
    return status, out, err


def ours(fake: FakeNetScaler) -> list[str]:
    return [p["name"] for p in fake.objects("responderpolicy") if p["name"].startswith("le-")]


@pytest.mark.parametrize("change, expected", [
    ({"NS_DC2_URL": ""}, "NS_DC2_URL is not set"),
    ({"NS_DC1_ROLE": "everything"}, "NS_DC1_ROLE (from environment): must be one of"),
    ({"NS_TARGETS": "dc1 dc2 DC1"}, '"DC1" is listed twice'),
])
def test_bad_targets_exit_2_without_a_request(
        fakes: tuple[FakeNetScaler, FakeNetScaler], env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        change: dict[str, str], expected: str) -> None:
    for key, value in change.items():
        monkeypatch.setenv(key, value)
    status, _, err = run(capsys, "hook", "deploy_challenge", *TRIPLE)
    assert status == 2 and expected in err
    assert [fake.requests for fake in fakes] == [[], []]


def test_test_checks_every_target(fakes: tuple[FakeNetScaler, FakeNetScaler],
                                  env: dict[str, str],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    fakes[1].set_feature("RESPONDER", False)
    status, out, _ = run(capsys, "test", "--json")
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert status == 6
    assert checks["dc1:responder"]["ok"] and not checks["dc2:responder"]["ok"]
    assert checks["dc1:vserver"]["ok"] and checks["dc2:vserver"]["ok"]  # web and web2


def test_a_challenge_refused_by_one_target_fails_and_is_cleaned_on_all(
        fakes: tuple[FakeNetScaler, FakeNetScaler], env: dict[str, str],
        capsys: pytest.CaptureFixture[str]) -> None:
    dc1, dc2 = fakes
    dc2.inject("PUT", "lbvserver_responderpolicy_binding", None, kind="error", status=599,
               errorcode=257, message="Operation not permitted")
    status, _, err = run(capsys, "hook", "deploy_challenge", *TRIPLE)
    assert status == 7
    assert "the challenge failed on dc2 (step 'run')" in err
    assert ours(dc1) == [] and ours(dc2) == []  # removed from every challenge target


def test_challenges_reach_every_target(fakes: tuple[FakeNetScaler, FakeNetScaler],
                                       env: dict[str, str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    status, _, _ = run(capsys, "hook", "deploy_challenge", *TRIPLE)
    assert status == 0 and len(ours(fakes[0])) == len(ours(fakes[1])) == 1
    run(capsys, "hook", "clean_challenge", *TRIPLE)
    assert ours(fakes[0]) == ours(fakes[1]) == []


def test_status_per_target_and_the_worst_wins(fakes: tuple[FakeNetScaler, FakeNetScaler],
                                              env: dict[str, str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_deploy import Issuer

    issuer = Issuer(tmp_path / "pki")
    files = issuer.issue(["www.example.com"])
    assert run(capsys, "deploy", str(files["cert"]), str(files["key"]),
               str(files["chain"]))[0] == 0
    fakes[1].inject(None, "*", "*", kind="reset", times=1000)  # dc2 unreachable

    status, out, _ = run(capsys, "status", "--json", "--certs-dir", "none")
    report = json.loads(out)
    assert status == 3 and report["state"] == "UNKNOWN"
    rows = {(c["target"], c["certkey"]): c["state"] for c in report["certificates"]}
    assert rows == {("dc1", "le-www.example.com"): "OK", ("dc2", "-"): "UNKNOWN"}

    status, out, _ = run(capsys, "status", "--nagios", "--certs-dir", "none")
    assert status == 3 and out.startswith("NS-LETSENCRYPT UNKNOWN - dc2:- ")
    assert "'dc1:le-www.example.com'=" in out


# -- dns-01 through each target's own ADNS (NS_DNS=adns) -----------------------------------

DNS_NAME = "_acme-challenge.example.test"
DNS_VALUES = ("A" * 43, "B" * 43)
DNS_ARGS = ["*.example.test", "tok-1", DNS_VALUES[0], "example.test", "tok-2", DNS_VALUES[1]]


@pytest.fixture
def adns_env(fakes: tuple[FakeNetScaler, FakeNetScaler], env: dict[str, str],
             monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for fake in fakes:
        fake.enable_adns(("example.test",))  # each site's ADNS is authoritative (GSLB)
    for key, value in {"NS_DNS": "adns", "NS_DNS_WAIT": "10",
                       "CHALLENGETYPE": "dns-01"}.items():
        monkeypatch.setenv(key, value)
    return env


def state_kinds(env: dict[str, str]) -> list[tuple[str, str]]:
    from ns_letsencrypt.dns.state import StateFile

    return sorted((e.kind, e.value) for e in StateFile(Path(env["NS_LE_HOME"])).entries())


def test_dns01_values_reach_every_adns_target_and_leave_all(
        fakes: tuple[FakeNetScaler, FakeNetScaler], adns_env: dict[str, str],
        capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "hook", "deploy_challenge", *DNS_ARGS)
    both = [(DNS_NAME, DNS_VALUES[0]), (DNS_NAME, DNS_VALUES[1])]
    assert status == 0, err
    assert fakes[0].txt_records() == fakes[1].txt_records() == both
    assert state_kinds(adns_env) == sorted((f"adns@{t}", v) for t in ("dc1", "dc2")
                                           for v in DNS_VALUES)
    status, _, err = run(capsys, "hook", "clean_challenge", *DNS_ARGS)
    assert status == 0, err
    assert fakes[0].txt_records() == fakes[1].txt_records() == []
    assert state_kinds(adns_env) == []


def test_a_dns01_value_refused_by_one_target_fails_and_is_removed_from_all(
        fakes: tuple[FakeNetScaler, FakeNetScaler], adns_env: dict[str, str],
        capsys: pytest.CaptureFixture[str]) -> None:
    fakes[1].inject("POST", "dnstxtrec", None, errorcode=257,
                    message="Operation not permitted")
    status, _, err = run(capsys, "hook", "deploy_challenge", *DNS_ARGS)
    assert status == 7
    assert "the challenge failed on dc2" in err and "removed from every challenge target" in err
    assert fakes[0].txt_records() == fakes[1].txt_records() == []
    assert state_kinds(adns_env) == []


def test_each_target_sweeps_its_own_dns01_leftovers(
        fakes: tuple[FakeNetScaler, FakeNetScaler], adns_env: dict[str, str],
        capsys: pytest.CaptureFixture[str]) -> None:
    from ns_letsencrypt.config import load_settings
    from ns_letsencrypt.dns import flow

    status, _, err = run(capsys, "hook", "deploy_challenge", *DNS_ARGS)  # never cleaned
    assert status == 0, err
    dc1, dc2 = load_settings().targets
    flow.sweep(dc1)  # dc2's values stay recorded while they are on dc2
    assert fakes[0].txt_records() == [] and len(fakes[1].txt_records()) == 2
    assert state_kinds(adns_env) == sorted(("adns@dc2", v) for v in DNS_VALUES)
    flow.sweep(dc2)
    assert fakes[1].txt_records() == [] and state_kinds(adns_env) == []


def test_a_certs_only_target_neither_publishes_nor_checks_dns01(
        fakes: tuple[FakeNetScaler, FakeNetScaler], adns_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    from ns_letsencrypt.config import load_settings
    from ns_letsencrypt.dns import flow
    from ns_letsencrypt.errors import DnsNotReady

    monkeypatch.setenv("NS_DC2_ROLE", "certs")
    status, _, err = run(capsys, "hook", "deploy_challenge", *DNS_ARGS)
    assert status == 0, err
    assert len(fakes[0].txt_records()) == 2 and fakes[1].txt_records() == []
    assert state_kinds(adns_env) == sorted(("adns@dc1", v) for v in DNS_VALUES)
    run(capsys, "hook", "clean_challenge", *DNS_ARGS)
    domains = tmp_path / "domains.txt"
    domains.write_text("*.other.test other.test > star_other_test\n")  # no fake serves it
    dc1, dc2 = load_settings().targets
    with pytest.raises(DnsNotReady, match=r"not authoritative for _acme-challenge\.other\.test"):
        flow.startup(dc1, domains, tmp_path / "certs")
    flow.startup(dc2, domains, tmp_path / "certs")  # takes no challenges: nothing to check
    assert fakes[1].writes() == [] and state_kinds(adns_env) == []
