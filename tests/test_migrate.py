"""``ns-letsencrypt migrate-config``: .env from a legacy mynsconfig.py, through the real CLI."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from ns_letsencrypt import cli
from ns_letsencrypt.config import load_settings

# Quotes, a backslash, "#", "$" and a space: everything a .env line could get wrong.
PASSWORD = "Mig-pw'9\"q\\#x $HOME"
LEGACY = f"""\
# the original tool's settings
nitroNSIP = "192.168.2.54"
connectiontype = "https"
nitroUser = "nsle"
nitroPass = {PASSWORD!r}
nspairname = "le-"
nscert = "le-cert"
nscertpath = "/nsconfig/ssl/"
polpristart = 20
nsvip = "csw http"
viptype = "csw"
passplain = "..."
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NS_LE_HOME", str(tmp_path))
    for key in ("NS_URL", "NS_USER", "NS_PASSWORD", "NS_PASSWORD_FILE", "NS_VSERVER"):
        monkeypatch.delenv(key, raising=False)
    legacy = tmp_path / "mynsconfig.py"
    legacy.write_text(LEGACY)
    legacy.chmod(0o600)
    return tmp_path


def migrate(capsys: pytest.CaptureFixture[str], *args: str,
            global_args: tuple[str, ...] = ()) -> tuple[int, str, str]:
    code = cli.main([*global_args, "migrate-config", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_round_trip_gives_the_same_settings_and_the_warning_goes(
        home: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = load_settings(environ={}, install_dir=home)

    code, out, err = migrate(capsys)

    assert (code, err) == (0, "")
    env_file = home / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert PASSWORD not in out and "NS_PASSWORD=*** (not shown)" in out
    assert f"wrote {env_file} (mode 600) from {home / 'mynsconfig.py'}:" in out
    for line in ("NS_URL=https://192.168.2.54  (from connectiontype + nitroNSIP)",
                 "NS_USER=nsle  (from nitroUser)", "NS_VSERVER_TYPE=cs  (from viptype)",
                 "NS_VSERVER=csw http  (from nsvip)", "NS_PRIORITY_START=20  (from polpristart)",
                 "NS_CERT_PATH=/nsconfig/ssl/  (from nscertpath)",
                 "NS_CERTKEY_PREFIX=le-  (from nspairname)",
                 "not carried over, no longer used: nscert",
                 "not carried over, unknown: passplain"):
        assert line in out.splitlines() or f"  {line}" in out.splitlines(), (line, out)

    (home / "mynsconfig.py").unlink()
    monkeypatch.setattr(logging.getLogger("ns_letsencrypt"), "propagate", True)
    caplog.set_level(logging.INFO)
    caplog.clear()
    after = load_settings(environ={}, install_dir=home)

    assert after == before
    assert after.password == PASSWORD
    assert after.sources["password"] == f".env {env_file}"
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]  # no note, no warning


def test_existing_env_is_kept_unless_forced(home: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    env_file = home / ".env"
    env_file.write_text("NS_TIMEOUT=9\n")

    code, out, err = migrate(capsys)

    assert (code, out) == (2, "")
    assert f"{env_file} already exists; not overwritten" in err
    assert "--force" in err
    assert env_file.read_text() == "NS_TIMEOUT=9\n"
    assert sorted(p.name for p in home.iterdir()) == [".env", "mynsconfig.py"]

    code, out, err = migrate(capsys, "--force")

    assert (code, err) == (0, "")
    assert (home / ".env.bak").read_text() == "NS_TIMEOUT=9\n"
    assert (home / ".env.bak").stat().st_mode & 0o777 == 0o600
    assert f"the previous .env is kept as {home / '.env.bak'}" in out
    assert "NS_URL='https://192.168.2.54'" in env_file.read_text()


def test_explicit_paths(home: Path, tmp_path_factory: pytest.TempPathFactory,
                        capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path_factory.mktemp("etc")
    legacy = elsewhere / "old.py"
    (home / "mynsconfig.py").rename(legacy)
    target = elsewhere / "nsle.env"

    code, _out, err = migrate(capsys, global_args=("--legacy-config", str(legacy),
                                                "--env-file", str(target)))

    assert (code, err) == (0, "")
    assert load_settings(env_file=str(target), environ={}, install_dir=home).username == "nsle"
    assert not (home / ".env").exists()


@pytest.mark.parametrize(("text", "expected"), [
    (None, "no legacy configuration at"),
    ("import os\nnitroUser = 'x'\n", "line 1: an import is not a plain assignment"),
    ("nitroUser = 5\n", "nitroUser (from mynsconfig.py"),
    (f"nitroPass = {PASSWORD!r}\nnsvip = 'a\\nb'\n", "NS_VSERVER: the value has a line break"),
])
def test_unreadable_legacy_file_writes_nothing(home: Path, capsys: pytest.CaptureFixture[str],
                                               text: Any, expected: str) -> None:
    legacy = home / "mynsconfig.py"
    if text is None:
        legacy.unlink()
    else:
        legacy.write_text(text)

    code, out, err = migrate(capsys)

    assert (code, out) == (2, "")
    assert expected in err
    assert PASSWORD not in err
    assert not (home / ".env").exists()
    assert not [p for p in home.iterdir() if p.name.startswith(".env")]
