"""Run state (ns_letsencrypt/runstate.py): one NITRO session and read-once answers per run.

Against the fake NetScaler, each ``with open_client(...)`` standing for one hook process of a
run: the session is opened once and kept in a mode-600 file of the private run directory,
reused, replaced after the appliance killed it, ended once; answers that cannot change within
a run are read once. Whole runs through the cron scripts are in tests/test_run_session.py.
"""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest

from ns_letsencrypt import runstate
from ns_letsencrypt.session import open_client
from tests.conftest import fake_settings


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    return directory


def state_for(fake: Any, run_dir: Path) -> runstate.RunState:
    state = runstate.RunState.open(run_dir, fake.url, "nsroot")
    assert state is not None
    return state


def count(fake: Any, resource: str) -> int:
    return sum(1 for r in fake.requests if r.resource == resource)


def test_processes_of_a_run_share_one_session_until_it_is_ended(fake: Any, run_dir: Path,
                                                                 monkeypatch: Any) -> None:
    monkeypatch.setenv(runstate.RUN_DIR_ENV, str(run_dir))
    settings = fake_settings(fake)  # NS_AUTH=auto: within a run, the shared session
    for _process in range(3):
        with open_client(settings) as client:
            client.get("responderpolicy")

    assert (count(fake, "login"), count(fake, "logout")) == (1, 0)
    (session_file,) = run_dir.glob("session-*.json")
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    token = json.loads(session_file.read_text())["sessionid"]
    assert list(fake.state.sessions) == [token]
    assert fake.state.sessions[token].timeout == runstate.SESSION_TIMEOUT

    open_client(settings).end_session()

    assert (count(fake, "login"), count(fake, "logout")) == (1, 1)
    assert not fake.state.sessions and not list(run_dir.glob("session-*.json"))


def test_a_session_the_appliance_killed_is_replaced_by_a_new_login(fake: Any,
                                                                   run_dir: Path) -> None:
    state = state_for(fake, run_dir)
    settings = fake_settings(fake)
    with open_client(settings, run=state) as client:
        client.get("responderpolicy")
    first = state.load_token()
    fake.expire_sessions()

    with open_client(settings, run=state) as client:
        assert client.get("lbvserver", "web")[0]["name"] == "web"

    assert count(fake, "login") == 2
    assert state.load_token() not in (None, first)
    assert list(fake.state.sessions) == [state.load_token()]


def test_answers_that_cannot_change_within_a_run_are_read_once(fake: Any,
                                                               run_dir: Path) -> None:
    settings = fake_settings(fake)
    for _process in range(2):
        with open_client(settings, run=state_for(fake, run_dir)) as client:
            version = client.get("nsversion")
            client.get("nsconfig")
            client.get("responderpolicy")  # changes within a run (our challenges): read again

    assert version and "NS14.1" in str(version[0]["version"])
    assert (count(fake, "nsversion"), count(fake, "nsconfig")) == (1, 1)
    assert count(fake, "responderpolicy") == 2
    (cache_file,) = run_dir.glob("cache-*.json")
    assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600


def test_another_appliance_or_user_gets_its_own_session(fake: Any, run_dir: Path) -> None:
    settings = fake_settings(fake)
    with open_client(settings, run=state_for(fake, run_dir)):
        pass
    other = runstate.RunState.open(run_dir, fake.url, "someone-else")
    assert other is not None and other.load_token() is None
    assert other.lookup("nsversion", "GET nsversion?") is None


@pytest.mark.parametrize("mode", [0o755, 0o770])
def test_a_run_directory_others_can_read_shares_nothing(fake: Any, tmp_path: Path, mode: int,
                                                        monkeypatch: Any,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "open"
    directory.mkdir()
    directory.chmod(mode)
    monkeypatch.setenv(runstate.RUN_DIR_ENV, str(directory))
    settings = fake_settings(fake, auth="session")
    with caplog.at_level(logging.WARNING, logger="ns_letsencrypt"):
        for _process in range(2):
            with open_client(settings) as client:
                client.get("nsversion")

    assert (count(fake, "login"), count(fake, "logout"), count(fake, "nsversion")) == (2, 2, 2)
    assert not list(directory.iterdir())
    assert "must be mode 700" in caplog.text


def test_without_a_run_directory_each_process_logs_in_and_out(fake: Any) -> None:
    settings = fake_settings(fake, auth="session")
    for _process in range(2):
        with open_client(settings) as client:
            client.get("nsversion")
    assert (count(fake, "login"), count(fake, "logout"), count(fake, "nsversion")) == (2, 2, 2)


def test_a_refused_session_timeout_falls_back_to_the_appliance_default(fake: Any,
                                                                      run_dir: Path) -> None:
    # e.g. restricted timeouts: the user's own limit applies and our value is out of range
    fake.inject(method="POST", resource="login", kind="error", status=599, errorcode=1219,
                message="Invalid Timeout [timeout, 600]")
    state = state_for(fake, run_dir)
    with open_client(fake_settings(fake), run=state) as client:
        client.get("nsversion")

    assert count(fake, "login") == 2
    token = state.load_token()
    assert token is not None and fake.state.sessions[token].timeout == fake.state.session_timeout
