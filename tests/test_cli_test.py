"""``ns-letsencrypt test`` and ``ns-copytons.py`` against the fake NetScaler.

In-process through ``cli.main([...])`` with capsys, and as real subprocesses
(``python -m ns_letsencrypt test``, ``./ns-copytons.py test``) configured only through NS_*
environment variables. Every run checks the exit status, that stderr has no traceback, and
that the password appears in no output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ns_letsencrypt import cli
from tests.conftest import PASSWORD, USER, closed_port

REPO = Path(__file__).resolve().parent.parent
COPYTONS = REPO / "ns-copytons.py"


def settings_env(fake: Any, tmp_path: Path, **extra: str) -> dict[str, str]:
    """NS_* variables for the fake over HTTPS (pinned), password in a mode-600 file."""
    password_file = tmp_path / "nitro-password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    env = {
        "NS_LE_HOME": str(tmp_path),  # no .env / mynsconfig.py from the checkout
        "NS_URL": fake.url,
        "NS_USER": USER,
        "NS_PASSWORD_FILE": str(password_file),
        "NS_TLS_PIN": fake.cert_sha256,
        "NS_VSERVER": "web",
        "NS_VSERVER_TYPE": "lb",
        "NS_TIMEOUT": "5,10",
    }
    env.update(extra)
    return env


@pytest.fixture
def env(fake: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The settings environment, applied to this process (tests may extend it)."""
    values = settings_env(fake, tmp_path)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert_clean(out, err)
    return status, out, err


def run_process(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    child_env = {key: value for key, value in os.environ.items() if not key.startswith("NS_")}
    child_env.update(env)
    child_env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(argv, env=child_env, cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)
    assert_clean(done.stdout, done.stderr)
    return done.returncode, done.stdout, done.stderr


def assert_clean(out: str, err: str) -> None:
    assert "Traceback" not in err
    assert PASSWORD not in out and PASSWORD not in err


def line_of(out: str, name: str) -> str:
    """The report line of the check called ``name``."""
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[1] == name:
            return line
    raise AssertionError(f"no check {name!r} in:\n{out}")


# -- in-process ---------------------------------------------------------------------------


def test_ready_appliance_reports_every_check_ok(
    fake: Any, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run_main(capsys, "test")
    assert status == 0
    for name in ("nitro", "firmware", "ha", "responder", "vserver", "vserver-port",
                 "vserver-state"):
        assert line_of(out, name).startswith("ok")
    assert "NS14.1: Build 25.56" in line_of(out, "firmware")
    assert out.rstrip().endswith("ready")
    with fake.state.lock:
        assert not fake.state.sessions  # logged out again
    assert fake.writes() == []  # test changes nothing


def test_json_output_parses(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(capsys, "test", "--json")
    document = json.loads(out)
    assert status == 0 and document["exit_status"] == 0
    assert document["firmware"] == "NS14.1: Build 25.56"
    assert document["ha_state"] == "primary"
    assert {c["name"] for c in document["checks"]} >= {"nitro", "responder", "vserver"}
    assert all(c["ok"] and c["level"] == "ok" for c in document["checks"])


def test_bad_password_exits_4(
    fake: Any, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    Path(env["NS_PASSWORD_FILE"]).write_text("not-the-password\n")
    status, out, _ = run_main(capsys, "test")
    assert status == 4
    assert line_of(out, "nitro").startswith("FAIL")
    assert "NS_PASSWORD" in out


def test_unreachable_appliance_exits_3(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NS_URL", f"https://127.0.0.1:{closed_port()}")
    status, out, _ = run_main(capsys, "test")
    assert status == 3
    assert "connection refused" in line_of(out, "nitro")


def test_unverifiable_certificate_exits_3_with_the_pin_hint(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NS_TLS_PIN")
    status, out, _ = run_main(capsys, "test")
    assert status == 3
    assert "--show-fingerprint" in line_of(out, "nitro")


def test_ha_secondary_exits_6(
    fake: Any, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake.set_ha_state("Secondary")
    status, out, _ = run_main(capsys, "test", "--json")
    document = json.loads(out)
    assert status == 6 and document["exit_status"] == 6
    assert document["ha_state"] == "secondary"
    ha = next(c for c in document["checks"] if c["name"] == "ha")
    assert not ha["ok"] and "primary" in ha["hint"]


def test_responder_disabled_exits_6_with_the_fix(
    fake: Any, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake.set_feature("RESPONDER", False)
    status, out, _ = run_main(capsys, "test")
    assert status == 6
    assert line_of(out, "responder").startswith("FAIL")
    assert "enable ns feature responder" in out


def test_wrong_vserver_name_exits_6_naming_the_existing_ones(
    fake: Any, env: dict[str, str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake.add_lbvserver("web2", servicetype="HTTP", port=80)
    fake.add_lbvserver("secure", servicetype="SSL", port=443)
    monkeypatch.setenv("NS_VSERVER", "wbe")
    status, out, _ = run_main(capsys, "test")
    assert status == 6
    line = line_of(out, "vserver")
    assert line.startswith("FAIL") and "'wbe'" in line
    assert "web, web2" in line and "secure" not in line


def test_lb_name_configured_as_cs_is_reported(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NS_VSERVER_TYPE", "cs")
    status, out, _ = run_main(capsys, "test")
    assert status == 6
    line = line_of(out, "vserver")
    assert "'web' is an lb vserver, not a cs" in line
    assert "NS_VSERVER_TYPE=lb" in line


def test_down_vserver_on_port_8080_warns_and_exits_0(
    fake: Any, env: dict[str, str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake.add_lbvserver("alt", servicetype="HTTP", port=8080, state="DOWN")
    monkeypatch.setenv("NS_VSERVER", "alt")
    status, out, _ = run_main(capsys, "test")
    assert status == 0
    assert line_of(out, "vserver-port").startswith("WARN") and "8080" in out
    assert line_of(out, "vserver-state").startswith("WARN") and "DOWN" in out
    assert "2 warning(s)" in out


def test_global_binding_without_http_vserver_warns(
    fake: Any, env: dict[str, str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with fake.state.lock:
        fake.state.lbvservers.clear()
    monkeypatch.setenv("NS_VSERVER_TYPE", "global")
    monkeypatch.delenv("NS_VSERVER")
    status, out, _ = run_main(capsys, "test")
    assert status == 0
    assert line_of(out, "vserver").startswith("WARN")


def test_config_error_exits_2(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NS_VSERVER_TYPE", "bogus")
    status, out, _ = run_main(capsys, "test")
    assert status == 2
    assert line_of(out, "config").startswith("FAIL") and "NS_VSERVER_TYPE" in out


def test_config_error_with_json_is_json(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NS_URL")
    status, out, _ = run_main(capsys, "test", "--json")
    assert status == 2 and json.loads(out)["exit_status"] == 2


def test_show_fingerprint_prints_the_pin_and_sends_nothing(
    fake: Any, env: dict[str, str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NS_TLS_PIN")
    status, out, _ = run_main(capsys, "test", "--show-fingerprint")
    assert status == 0
    assert out.splitlines()[0] == f"NS_TLS_PIN={fake.cert_sha256}"
    assert "NS_TLS_PIN" in out.splitlines()[-1] or ".env" in out
    assert fake.requests == []


def test_show_fingerprint_needs_nothing_but_the_url(
    fake: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("NS_LE_HOME", str(tmp_path))
    monkeypatch.setenv("NS_URL", fake.url)  # no user, no password, no vserver
    status, out, _ = run_main(capsys, "test", "--show-fingerprint", "--json")
    assert status == 0
    assert json.loads(out) == {"url": fake.url, "tls_pin": fake.cert_sha256}


def test_show_fingerprint_of_plain_http_is_a_config_error(
    fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_main(capsys, "--url", fake.http_url, "test", "--show-fingerprint")
    assert status == 2 and out == ""
    assert "https" in err


# -- subprocesses -------------------------------------------------------------------------


def test_module_entry_point_ok_run(fake: Any, tmp_path: Path) -> None:
    status, out, _ = run_process([sys.executable, "-m", "ns_letsencrypt", "test"],
                                 settings_env(fake, tmp_path), tmp_path)
    assert status == 0, out
    assert line_of(out, "vserver").startswith("ok")


def test_module_entry_point_bad_password_exits_4(fake: Any, tmp_path: Path) -> None:
    values = settings_env(fake, tmp_path)
    Path(values["NS_PASSWORD_FILE"]).write_text("wrong\n")
    status, out, _ = run_process([sys.executable, "-m", "ns_letsencrypt", "test", "--json"],
                                 values, tmp_path)
    assert status == 4 and json.loads(out)["exit_status"] == 4


def test_copytons_test_via_symlink_from_another_directory(fake: Any, tmp_path: Path) -> None:
    link = tmp_path / "bin" / "ns-copytons"
    link.parent.mkdir()
    link.symlink_to(COPYTONS)
    values = settings_env(fake, tmp_path)
    status, out, _ = run_process([str(link), "test", "--json"], values, tmp_path)
    assert status == 0 and json.loads(out)["exit_status"] == 0


def test_copytons_test_reports_responder_off(fake: Any, tmp_path: Path) -> None:
    fake.set_feature("RESPONDER", False)
    status, out, _ = run_process([str(COPYTONS), "test"], settings_env(fake, tmp_path), tmp_path)
    assert status == 6 and "enable ns feature responder" in out


@pytest.mark.parametrize(("verb", "replacement"), [
    ("challenge", "ns-letsencrypt challenge"),
    ("clean", "ns-letsencrypt clean"),
    ("save", "ns-letsencrypt hook deploy_cert"),
    ("saveconfig", "ns-letsencrypt hook exit_hook"),
])
def test_copytons_retired_verbs_exit_2_naming_the_replacement(
    verb: str, replacement: str, tmp_path: Path
) -> None:
    status, out, err = run_process([str(COPYTONS), verb, "token", "value"], {}, tmp_path)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and replacement in err


@pytest.mark.parametrize("argv", [[], ["frobnicate"]])
def test_copytons_usage_errors_exit_2(argv: list[str], tmp_path: Path) -> None:
    status, _, err = run_process([str(COPYTONS), *argv], {}, tmp_path)
    assert status == 2 and err.startswith("usage: ns-copytons.py")


def test_copytons_unreachable_exits_3(tmp_path: Path, fake: Any) -> None:
    values = settings_env(fake, tmp_path, NS_URL=f"http://127.0.0.1:{closed_port()}")
    status, out, _ = run_process([str(COPYTONS), "test"], values, tmp_path)
    assert status == 3 and "connection refused" in out


def test_command_policy_denial_of_a_probe_exits_4_naming_the_policy(
    fake: Any, env: dict[str, str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake.add_user("le-api", PASSWORD, policies=[("ALLOW", r"^show ns (version|feature)$")])
    monkeypatch.setenv("NS_USER", "le-api")
    status, out, _ = run_main(capsys, "test")
    assert status == 4
    assert line_of(out, "nitro").startswith("ok")
    assert line_of(out, "responder").startswith("ok")
    ha = line_of(out, "ha")  # nsconfig's systemtype says whether hanode must be asked
    assert ha.startswith("FAIL") and "show ns config" in ha and "command policy" in ha
