"""One NITRO session per scheduled run, end to end: pebble + real dehydrated + the cron scripts +
``hooks/ns-hook.sh`` + the fake NetScaler (counted on the fake).

A whole run logs in once and out once; a session the appliance kills mid-run is replaced and
the run succeeds; a run killed outright leaves its session file, which the next run logs out
and removes (the next run itself again logs in and out once).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.test_scripts import CRON, e2e_home, served_serials

pytest_plugins = ["tests.stack"]


def logins_and_logouts(ns: Any, since: int = 0) -> tuple[int, int]:
    log = ns.requests[since:]
    return (sum(1 for r in log if r.resource == "login"),
            sum(1 for r in log if r.resource == "logout"))


def leftovers(tmp: Path) -> list[Path]:
    """Run directories and session files still on disk (TMPDIR of the runs is ``tmp``)."""
    return sorted(tmp.glob("ns-letsencrypt-run.*")) + sorted(tmp.glob("**/session-*.json"))


def cron(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CRON)], env=env, capture_output=True, text=True, timeout=240)


def test_a_whole_run_logs_in_once_and_out_once(acme: Any, ns: Any) -> None:
    home, env = e2e_home(acme, "www.example.test\n")

    first = cron(env)

    assert first.returncode == 0, first.stdout + first.stderr
    assert "le-www.example.test" in served_serials(ns)
    assert logins_and_logouts(ns) == (1, 1)
    assert not ns.state.sessions  # nothing left open on the appliance
    assert not leftovers(acme.tmp) and not (home / ".ns-letsencrypt.run").exists()

    before = len(ns.requests)
    again = cron(env)  # nothing due: the daily run

    assert again.returncode == 0, again.stdout + again.stderr
    assert logins_and_logouts(ns, before) == (1, 1)
    assert not ns.state.sessions and not leftovers(acme.tmp)


def test_a_session_killed_mid_run_is_replaced(acme: Any, ns: Any) -> None:
    home, env = e2e_home(acme, "www.example.test\n")
    # the appliance drops the run's session just before the first file upload of deploy_cert
    ns.inject(method="POST", resource="systemfile", kind="expire")

    result = cron(env)

    assert result.returncode == 0, result.stdout + result.stderr
    transcript = (home / "log" / "ns-letsencrypt.log").read_text()  # a quiet run logs it there
    assert "NITRO session expired (errorcode 444); logging in again" in transcript
    assert "le-www.example.test" in served_serials(ns)
    assert logins_and_logouts(ns) == (2, 1)  # the killed session needs no logout
    assert not ns.state.sessions and not leftovers(acme.tmp)


def test_a_killed_run_leaves_no_session_behind_after_the_next_run(acme: Any, ns: Any) -> None:
    home, env = e2e_home(acme, "www.example.test\n")
    running = subprocess.Popen([str(CRON)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not list(acme.tmp.glob("ns-letsencrypt-run.*/session-*.json")):
            assert running.poll() is None and time.monotonic() < deadline, "no session kept"
            time.sleep(0.01)
    finally:
        os.killpg(running.pid, signal.SIGKILL)  # no exit trap runs
        running.wait()
    assert list(acme.tmp.glob("ns-letsencrypt-run.*/session-*.json"))
    assert len(ns.state.sessions) == 1  # still open on the appliance
    (home / "lock").unlink(missing_ok=True)  # dehydrated's own lock survives a SIGKILL too
    before = len(ns.requests)

    result = cron(env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert not leftovers(acme.tmp) and not (home / ".ns-letsencrypt.run").exists()
    assert not ns.state.sessions  # the killed run's session was logged out, and this run's
    assert logins_and_logouts(ns, before) == (1, 2)


@pytest.mark.parametrize("broken", ["vserver", "responder"])
def test_challenge_checks_moved_out_of_startup_still_stop_the_run_before_validation(
        acme: Any, ns: Any, broken: str) -> None:
    _, env = e2e_home(acme, "www.example.test\n")
    if broken == "vserver":
        env["NS_VSERVER"] = "no-such-vserver"
    else:
        ns.set_feature("RESPONDER", False)

    result = cron(env)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Responding to challenge" not in output  # the CA was never asked to validate
    assert ("no lb vserver named 'no-such-vserver'" if broken == "vserver"
            else "the RESPONDER feature is disabled") in result.stderr
    assert ns.dataplane_requests == []
    assert not [r for r in ns.writes() if r.resource.startswith("responder")]
    assert logins_and_logouts(ns) == (1, 1)
    assert not ns.state.sessions and not leftovers(acme.tmp)


def listings(ns: Any, since: int = 0) -> int:
    """``GET systemfile`` listings of the certificate directory since request ``since``."""
    return sum(1 for r in ns.requests[since:]
               if r.method == "GET" and r.resource == "systemfile")


def test_the_final_reconciliation_lists_files_only_for_a_certificate_not_deployed_this_run(
        acme: Any, ns: Any) -> None:
    from tests.test_scripts import FORCE

    _, env = e2e_home(acme, "www.example.test\nshop.example.test\n")

    first = cron(env)  # both deployed (and verified) in this run: nothing to list again

    assert first.returncode == 0, first.stdout + first.stderr
    assert {"le-www.example.test", "le-shop.example.test"} <= set(served_serials(ns))
    assert listings(ns) == 0
    www_cert = next(ck["cert"] for ck in ns.certkeys() if ck["certkey"] == "le-www.example.test")
    with ns.state.lock:  # someone deletes the file of the certificate the next run leaves alone
        from tests.fakens.files import file_store

        assert file_store(ns.state).remove("/nsconfig/ssl", www_cert)
    before = len(ns.requests)

    forced = subprocess.run([str(FORCE), "shop.example.test"], env=env, capture_output=True,
                            text=True, timeout=240)

    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert listings(ns, before) == 1  # www was not deployed by this run: its files are checked
    assert www_cert in ns.files()  # and the missing one was put back
    assert not ns.state.sessions and not leftovers(acme.tmp)
