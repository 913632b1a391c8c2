"""ns_letsencrypt.runlog through real ``ns-letsencrypt`` processes: what one run shares.

Each process stands for one dehydrated hook of a run (same NS_LE_RUN_DIR): the configuration
notes appear in the first process only, its warnings are kept in the run's ``warnings`` file,
and without NS_LE_RUN_DIR (by hand) every process says everything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "Runlog-pw-7#q"
# Loose mode and a superseded name: a deprecation warning, a permission warning and a note.
LEGACY = f"""\
nitroNSIP = "127.0.0.1:1"
nitroUser = "nsle"
nitroPass = "{PASSWORD}"
nsvip = "web"
nscert = "le-cert"
"""


def one_process(home: Path, run_dir: Path | None) -> str:
    """``ns-letsencrypt save-config`` (loads the settings, then cannot connect): its stderr."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NS_")}
    env.update({"NS_LE_HOME": str(home), "NS_RETRIES": "0", "NS_TIMEOUT": "2"})
    if run_dir is not None:
        env["NS_LE_RUN_DIR"] = str(run_dir)
    done = subprocess.run([sys.executable, "-m", "ns_letsencrypt", "save-config"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode != 0  # nothing listens on port 1
    assert PASSWORD not in done.stderr
    return done.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "mynsconfig.py").write_text(LEGACY)
    (home / "mynsconfig.py").chmod(0o644)
    return home


def notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "mynsconfig.py" in line]


def test_configuration_notes_once_per_run_and_warnings_kept(home: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)

    first, second, third = (one_process(home, run_dir) for _ in range(3))

    shown = notes(first)
    assert [line.split(":")[0] for line in shown] == ["WARNING", "INFO", "WARNING"], first
    assert "is deprecated" in shown[0] and "nscert no longer used" in shown[1]
    assert "readable by group or others (mode 0644); run: chmod 600" in shown[2]
    assert notes(second) == notes(third) == []
    kept = (run_dir / "warnings").read_text().splitlines()
    assert kept[:2] == [shown[0], shown[2]]  # the warnings as shown, the note (INFO) not
    assert all(line.startswith(("WARNING: ", "ERROR: ")) for line in kept)
    assert PASSWORD not in (run_dir / "warnings").read_text()
    assert (run_dir / "warnings").stat().st_mode & 0o777 == 0o600


def test_without_a_run_every_process_says_everything(home: Path) -> None:
    assert len(notes(one_process(home, None))) == len(notes(one_process(home, None))) == 3


def test_script_settings_in_env_file_say_where_they_belong(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from ns_letsencrypt.config import load_settings

    env_file = tmp_path / ".env"
    env_file.write_text("NS_URL=https://10.0.0.5\nNS_USER=u\nNS_PASSWORD_FILE=pw\n"
                        "NS_VSERVER=web\nNS_LOG_LEVEL=info\nNS_LOG_FILE=/tmp/x\nNS_TYPO=1\n")
    (tmp_path / "pw").write_text("secret\n")
    (tmp_path / "pw").chmod(0o600)
    monkeypatch.setattr(logging.getLogger("ns_letsencrypt"), "propagate", True)
    caplog.set_level(logging.WARNING)

    load_settings(environ={}, install_dir=tmp_path)

    # (a set: after other tests, a record may reach caplog by two paths)
    assert {r.getMessage() for r in caplog.records} == {
        f".env {env_file}: ignoring NS_LOG_LEVEL, NS_LOG_FILE: the scripts read it from their "
        "environment (the crontab line, or Environment= in the systemd unit)",
        f".env {env_file}: ignoring unknown settings NS_TYPO (every setting is listed in "
        ".env.example)"}
