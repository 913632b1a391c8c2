"""Concurrency: overlapping scheduled runs, and two installations sharing one appliance.

* Two ``ns-cronjob.sh`` runs started together, with a stand-in dehydrated that drives the real
  hook against the fake NetScaler (startup, two challenges, clean, deploy_cert, exit_hook):
  without ``NS_LOCK_WAIT`` the second exits 75 with the lock message; with it, the runs follow
  each other. Either way the appliance ends with one certkey, one CA certkey, no challenge
  object, and the configuration saved.
* Two installations (separate directories, the same challenge prefix) on one appliance: each
  one's startup and exit sweeps leave the other's live challenge objects alone, and challenges
  deployed by both at the same moment all answer, at distinct priorities.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_fault_matrix import (
    HOOK,
    HTTP_VSERVER,
    REPO,
    SITE,
    TOKENS,
    Stage,
    certkey_with_serial,
    challenges_answer,
    hierarchy,
    staged,
    unsaved,
)

CRON = REPO / "ns-cronjob.sh"
LOCKED = 75  # ns-cronjob.sh: another run holds the lock


@pytest.fixture
def stage() -> Iterator[Stage]:
    with staged(hierarchy()) as ready:
        yield ready


def child_env(stage: Stage, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NS_")}
    env.update(stage.env, NS_LE_PYTHON=sys.executable, **extra)
    return env


# -- two scheduled runs ------------------------------------------------------------------------


STAND_IN = """#!/bin/bash
# Stands in for dehydrated --cron: the hook calls of one issuance, in dehydrated's order.
set -euo pipefail
case " $* " in *" --cron "*) ;; *) exit 0 ;; esac
hook={hook}
log={log}
echo "start $$" >>"$log"
"$hook" startup_hook
"$hook" deploy_challenge {challenges}
# Hold the run open until the test lets it go (the other run must meet it mid-run).
for _ in $(seq 1200); do [ -e {release} ] && break; sleep 0.1; done
"$hook" clean_challenge {challenges}
certs="$BASEDIR/certs/{site}"
"$hook" deploy_cert {site} "$certs/privkey.pem" "$certs/cert.pem" "$certs/fullchain.pem" \\
  "$certs/chain.pem" 1700000000
"$hook" exit_hook ""
echo "end $$" >>"$log"
"""


def scheduled_home(stage: Stage) -> Path:
    """NS_LE_HOME with config.sh, domains.txt, an issued certificate and the stand-in."""
    home = stage.tmp / "home"
    certs = home / "certs" / SITE
    certs.mkdir(parents=True)
    (home / "lock").touch()  # dehydrated's own lock, taken when its run starts, before issuing
    issued = stage.issue("A", [SITE])
    for name, key in (("cert.pem", "cert"), ("chain.pem", "chain"), ("privkey.pem", "key"),
                      ("fullchain.pem", "fullchain")):
        shutil.copy(issued[key], certs / name)
    (certs / "privkey.pem").chmod(0o600)
    (home / "config.sh").write_text('WELLKNOWN="${BASEDIR}/.acme-challenges"\n')
    (home / "domains.txt").write_text(f"{SITE}\n")
    challenges = " ".join(item for triple in TOKENS for item in triple)
    stand_in = home / "dehydrated-stand-in"
    stand_in.write_text(STAND_IN.format(hook=HOOK, log=home / "runs.log", site=SITE,
                                        challenges=challenges, release=home / "release"))
    stand_in.chmod(0o755)
    return home


def start_cron(stage: Stage, home: Path, **extra: str) -> subprocess.Popen[str]:
    env = child_env(stage, NS_LE_HOME=str(home), BASEDIR=str(home),
                    DEHYDRATED=str(home / "dehydrated-stand-in"), **extra)
    return subprocess.Popen(["bash", str(CRON)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_any(runs: list[subprocess.Popen[str]], timeout: float = 120) -> int:
    """Index of the first of ``runs`` to exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for index, run in enumerate(runs):
            if run.poll() is not None:
                return index
        time.sleep(0.05)
    raise AssertionError("neither scheduled run finished")


def finish(run: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = run.communicate(timeout=180)
    return run.returncode, out + err


def assert_converged(stage: Stage) -> None:
    """One certkey for the site, one CA certkey, nothing temporary left, config saved."""
    ours = [c for c in stage.fake.certkeys() if str(c["certkey"]).startswith("le-")]
    leaf = certkey_with_serial(stage, stage.memo["serials"]["A"])
    assert leaf is not None
    assert len(ours) == 2, [c["certkey"] for c in ours]  # the leaf and its intermediate
    assert stage.challenge_objects() == []
    assert not unsaved(stage)
    names = [f for f in stage.fake.files() if f.startswith("le-")]
    assert len(names) == len(set(names))


def test_second_scheduled_run_exits_cleanly_while_the_first_works(stage: Stage) -> None:
    home = scheduled_home(stage)
    runs = [start_cron(stage, home), start_cron(stage, home)]
    first_done = wait_for_any(runs)  # the one that did not get the lock; the other is held
    (home / "release").touch()
    results = [finish(run) for run in runs]
    assert results[first_done][0] == LOCKED, results
    statuses = sorted(status for status, _ in results)
    assert statuses == [0, LOCKED], results
    locked_output = next(text for status, text in results if status == LOCKED)
    assert "another ns-letsencrypt run holds" in locked_output
    assert "Traceback" not in "".join(text for _, text in results)
    assert (home / "runs.log").read_text().count("end ") == 1
    assert_converged(stage)


def test_scheduled_runs_with_lock_wait_follow_each_other(stage: Stage) -> None:
    home = scheduled_home(stage)
    (home / "release").touch()
    runs = [start_cron(stage, home, NS_LOCK_WAIT="120"), start_cron(stage, home,
                                                                    NS_LOCK_WAIT="120")]
    results = [finish(run) for run in runs]
    assert [status for status, _ in results] == [0, 0], results
    events = [line.split()[0] for line in (home / "runs.log").read_text().splitlines()]
    assert events == ["start", "end", "start", "end"]  # never interleaved
    assert_converged(stage)


# -- two installations on one appliance ----------------------------------------------------


def other_install(tmp: Path) -> Path:
    """A second copy of the package in another directory: another installation id."""
    root = tmp / "other-install"
    shutil.copytree(REPO / "ns_letsencrypt", root / "ns_letsencrypt",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


OTHER_TOKENS = (("c.example.com", "tokC-3zs", "tokC-3zs.thumb"),
                ("d.example.com", "tokD-4wt", "tokD-4wt.thumb"))


def hook_process(stage: Stage, install: Path, *args: str) -> subprocess.Popen[str]:
    env = child_env(stage, PYTHONPATH=str(install))
    return subprocess.Popen([sys.executable, "-m", "ns_letsencrypt", "hook", *args], env=env,
                            cwd=install, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def run_hook(stage: Stage, install: Path, *args: str) -> tuple[int, str]:
    return finish(hook_process(stage, install, *args))


def other_args() -> list[str]:
    return [item for triple in OTHER_TOKENS for item in triple]


def test_other_installation_leaves_live_challenges_alone(stage: Stage) -> None:
    """Install A is mid-run (challenges deployed); install B starts and ends a whole run."""
    mine = [item for triple in TOKENS for item in triple]
    status, text = run_hook(stage, REPO, "deploy_challenge", *mine)
    assert status == 0, text
    other = other_install(stage.tmp)
    for args in (["startup_hook"], ["deploy_challenge", *other_args()],
                 ["clean_challenge", *other_args()], ["exit_hook", ""]):
        status, text = run_hook(stage, other, *args)
        assert status == 0, text
        assert challenges_answer(stage), f"install B's {args[0]} removed A's live challenge"
    assert not challenges_answer(stage, OTHER_TOKENS)  # B cleaned up its own
    status, text = run_hook(stage, REPO, "clean_challenge", *mine)
    assert status == 0, text
    assert stage.challenge_objects() == []


def test_other_installations_leftovers_survive_my_sweep_while_fresh(stage: Stage) -> None:
    """B was killed mid-run; A's sweep must not guess it is dead while its objects are fresh."""
    other = other_install(stage.tmp)
    status, text = run_hook(stage, other, "deploy_challenge", *other_args())
    assert status == 0, text
    for args in (["startup_hook"], ["exit_hook", ""]):
        status, text = run_hook(stage, REPO, *args)
        assert status == 0, text
    assert challenges_answer(stage, OTHER_TOKENS)
    status, text = run_hook(stage, other, "exit_hook", "")  # B's own next run sweeps them
    assert status == 0, text
    assert stage.challenge_objects() == []


def test_two_installations_deploy_at_the_same_moment(stage: Stage) -> None:
    """Both read the free priorities at once; the binds must still all succeed, distinct."""
    other = other_install(stage.tmp)
    mine = [item for triple in TOKENS for item in triple]
    for _ in range(3):  # a few rounds: the interleaving differs from round to round
        both = [hook_process(stage, REPO, "deploy_challenge", *mine),
                hook_process(stage, other, "deploy_challenge", *other_args())]
        results = [finish(run) for run in both]
        assert [status for status, _ in results] == [0, 0], results
        assert challenges_answer(stage) and challenges_answer(stage, OTHER_TOKENS)
        bindings = stage.fake.objects("lbvserver_responderpolicy_binding", HTTP_VSERVER)
        priorities = [int(b["priority"]) for b in bindings]
        assert len(priorities) == len(set(priorities)) == 4, bindings
        cleaners = [hook_process(stage, REPO, "clean_challenge", *mine),
                    hook_process(stage, other, "clean_challenge", *other_args())]
        assert [finish(run)[0] for run in cleaners] == [0, 0]
        assert stage.challenge_objects() == []
