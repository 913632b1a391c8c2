"""The hook's run-level behaviour against the fake: what startup_hook and exit_hook decide.

The end-to-end tests drive the same handlers through dehydrated; these check the decisions
that depend on the appliance's state before and during a run, without a CA.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from ns_letsencrypt.hook import run_hook
from tests import pki
from tests.conftest import fake_settings

TRIPLE = ["www.example.com", "tok-" + "a" * 39, "tok-" + "a" * 39 + ".thumb"]
UNSAVED = "unsaved configuration changes"


def saves(fake: Any) -> int:
    return sum(1 for r in fake.requests if r.resource == "nsconfig" and r.action == "save")


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dehydrated BASEDIR as the hook sees it during a run (lock file, domains.txt)."""
    (tmp_path / "domains.txt").write_text("www.example.com\n")
    (tmp_path / "lock").write_text("run started\n")
    monkeypatch.setenv("BASEDIR", str(tmp_path))
    monkeypatch.setenv("CERTDIR", str(tmp_path / "certs"))
    return tmp_path


def issue(run_dir: Path) -> dict[str, Path]:
    hierarchy = pki.make_hierarchy()
    leaf = pki.make_leaf(hierarchy.issuer, ["www.example.com"])
    files = pki.write_cert_dir(run_dir / "certs" / "www.example.com", leaf, hierarchy)
    # dehydrated writes the certificate after it took the lock at the start of the run
    later = (run_dir / "lock").stat().st_mtime + 1
    os.utime(files["cert"], (later, later))
    return files


def test_startup_reports_changes_left_unsaved_before_the_run(fake: Any, caplog: Any) -> None:
    fake.state.config_changed = True
    settings = fake_settings(fake)
    with caplog.at_level(logging.WARNING, logger="ns_letsencrypt"):
        assert run_hook("startup_hook", [], lambda: settings) == 0
    assert UNSAVED in caplog.text


def test_a_run_reports_nothing_about_its_own_challenges_and_saves_once(
        fake: Any, run_dir: Path, caplog: Any) -> None:
    settings = fake_settings(fake)
    with caplog.at_level(logging.WARNING, logger="ns_letsencrypt"):
        assert run_hook("startup_hook", [], lambda: settings) == 0
        assert run_hook("deploy_challenge", TRIPLE, lambda: settings) == 0
        assert run_hook("clean_challenge", TRIPLE, lambda: settings) == 0
        files = issue(run_dir)
        args = ["www.example.com", str(files["key"]), str(files["cert"]),
                str(files["fullchain"]), str(files["chain"]), "1700000000"]
        assert run_hook("deploy_cert", args, lambda: settings) == 0
        assert saves(fake) == 0  # deploy_cert leaves the save to exit_hook
        assert run_hook("exit_hook", [], lambda: settings) == 0
    assert UNSAVED not in caplog.text
    assert saves(fake) == 1
    assert [c["certkey"] for c in fake.certkeys()].count("le-www.example.com") == 1


def test_a_run_that_changed_nothing_does_not_save(fake: Any, run_dir: Path) -> None:
    settings = fake_settings(fake)
    files = issue(run_dir)
    args = ["www.example.com", str(files["key"]), str(files["cert"]),
            str(files["fullchain"]), str(files["chain"]), "1700000000"]
    assert run_hook("deploy_cert", args, lambda: settings) == 0
    assert run_hook("exit_hook", [], lambda: settings) == 0
    assert saves(fake) == 1
    # the next run: the certificate is older than the run's lock, the appliance has it
    (run_dir / "lock").unlink()
    (run_dir / "lock").write_text("next run\n")
    later = files["cert"].stat().st_mtime + 5
    os.utime(run_dir / "lock", (later, later))
    assert run_hook("exit_hook", [], lambda: settings) == 0
    assert saves(fake) == 1


def test_exit_hook_redeploys_what_the_appliance_lost(fake: Any, run_dir: Path) -> None:
    settings = fake_settings(fake)
    issue(run_dir)
    (run_dir / "lock").unlink()  # not issued in this run: only the reconciliation can deploy it
    assert run_hook("exit_hook", [], lambda: settings) == 0
    assert "le-www.example.com" in [c["certkey"] for c in fake.certkeys()]
    assert saves(fake) == 1


@pytest.mark.parametrize("error", ["", "Challenge is invalid! (returned: invalid)"])
def test_exit_hook_leaves_a_successful_runs_reconciliation_to_the_script(
        fake: Any, run_dir: Path, monkeypatch: pytest.MonkeyPatch, error: str) -> None:
    """ns-cronjob.sh reconciles after dehydrated succeeded, not after it failed."""
    monkeypatch.setenv("NS_LE_SCRIPT_RECONCILES", "1")
    settings = fake_settings(fake)
    issue(run_dir)
    (run_dir / "lock").unlink()
    assert run_hook("exit_hook", [error] if error else [], lambda: settings) == 0
    deployed = "le-www.example.com" in [c["certkey"] for c in fake.certkeys()]
    assert deployed is bool(error)
