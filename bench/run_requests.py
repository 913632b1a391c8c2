"""NITRO requests of whole runs through the real ``ns-cronjob.sh`` / ``ns-forcerenew.sh``.

pebble + real dehydrated + ``hooks/ns-hook.sh`` + the fake NetScaler (``tests/stack.py``), with
``config.sh.example`` as the configuration (``HOOK_CHAIN=yes``), so every hook process, the
script's final ``reconcile`` and its exit trap are counted from the fake's request log.

Scenarios and budgets (issue 13):

- ``first_issuance_1_name``: a new certificate for one name - at most 24 requests;
- ``first_issuance_5_names``: a new certificate for five names - at most 24;
- ``day_without_renewals``: the next daily run, nothing due - at most 8;
- ``forced_renewal_new_issuer``: a certificate issued through two intermediates, pebble
  restarted (a new root and new intermediates: a new issuer), then ``ns-forcerenew.sh NAME``:
  two new CA certkeys; the old two stay (unlinked, still valid: Let's Encrypt may issue from
  them again) - at most 30 (the README's benchmark paragraph lists the 30 requests).

Measured (this section): 24, 24, 8 and 30. The final reconciliation of a run that deployed
every certificate lists no files (each file in use was uploaded by the run, each certkey
verified); the no-op day lists them, and so does a run that left any certificate alone.

Each scenario also reports its logins and logouts and the request sequence. ``wall`` compares
a 1-name ``dehydrated -c`` through our hook - run by hand (``plain``) and inside a run directory
as the scripts run it, the end-of-run logout included (``run_dir``) - with the same run through a
hook that does nothing (challenges served from WELLKNOWN by a small file server), interleaved,
median of ``WALL_RUNS`` each; target: at most 1.0 s slower. The package is byte-compiled
first, as an installed host has it.
"""

from __future__ import annotations

import compileall
import functools
import http.server
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .common import REPO, require_stack_tools, run_counted

BUDGETS = {"first_issuance_1_name": 24, "first_issuance_5_names": 24,
           "day_without_renewals": 8, "forced_renewal_new_issuer": 30}
WALL_RUNS = 3
WALL_TARGET_S = 1.0
CRON = REPO / "ns-cronjob.sh"
FORCE = REPO / "ns-forcerenew.sh"


def _label(record: Any) -> str:
    text = f"{record.method} {record.resource}"
    if record.action:
        text += f"?action={record.action}"
    return text


def _home(work: Path, pebble: Any, fake: Any, domains: str) -> dict[str, str]:
    """An install home: config.sh.example + the test stack's lines; the hook's environment."""
    from tests.stack import _base_env, hook_env

    home = work / "home"
    home.mkdir(parents=True)
    env = {**_base_env(), **hook_env(work, fake), "TMPDIR": str(work)}
    accountdir = pebble.new_account(work / "account")
    example = (REPO / "config.sh.example").read_text()
    (home / "config.sh").write_text(example + "\n# bench stack\n" + "".join(
        f'{key}="{value}"\n' for key, value in {
            "CA": pebble.directory, "ACCOUNTDIR": str(accountdir),
            "HOOK": str(REPO / "hooks" / "ns-hook.sh"),
            "CURL_OPTS": f"--cacert {pebble.tls_cert} --noproxy 127.0.0.1,localhost",
            "ACCOUNT_KEYSIZE": "2048"}.items()))
    (home / "domains.txt").write_text(domains)
    return env


def _script(fake: Any, env: dict[str, str], *argv: str) -> dict[str, Any]:
    """Run one script; its request count, logins, logouts, sequence and wall time."""
    log, wall = run_counted(fake, Path(argv[0]).name, lambda: subprocess.run(
        list(argv), env=env, capture_output=True, text=True, timeout=600))
    return {"requests": len(log),
            "logins": sum(1 for r in log if r.resource == "login"),
            "logouts": sum(1 for r in log if r.resource == "logout"),
            "wall_s": round(wall, 3), "sequence": [_label(r) for r in log]}


def _judge(name: str, figures: dict[str, Any]) -> dict[str, Any]:
    figures["budget"] = BUDGETS[name]
    figures["within_budget"] = figures["requests"] <= BUDGETS[name]
    return figures


def scenarios(work: Path, pebble_factory: Any, port: int) -> dict[str, Any]:
    """The four budgeted runs, each against a fresh fake NetScaler where it needs one."""
    from tests.conftest import PASSWORD, USER
    from tests.fakens import FakeNetScaler

    results: dict[str, Any] = {}
    pebble = pebble_factory(None)
    for names in (1, 5):
        base = work / f"issue-{names}"
        with FakeNetScaler(users={USER: PASSWORD}, dataplane_port=port) as fake:
            fake.add_lbvserver("web", servicetype="HTTP", port=80, state="UP")
            domains = " ".join(f"host{i}.bench.test" for i in range(names)) + "\n"
            env = _home(base, pebble, fake, domains)
            key = f"first_issuance_{names}_name" + ("s" if names > 1 else "")
            results[key] = _judge(key, _script(fake, env, str(CRON)))
            if names == 1:
                results["day_without_renewals"] = _judge(
                    "day_without_renewals", _script(fake, env, str(CRON)))
    chained = pebble_factory(2)  # leaf + two intermediates
    base = work / "forced"
    with FakeNetScaler(users={USER: PASSWORD}, dataplane_port=port) as fake:
        fake.add_lbvserver("web", servicetype="HTTP", port=80, state="UP")
        env = _home(base, chained, fake, "chain.bench.test\n")
        _script(fake, env, str(CRON))
        old_cas = _ca_certkeys(fake)
        chained.restart()  # a new root and new intermediates: the issuer changes
        _new_account(base, chained)  # pebble forgot the account when it restarted
        forced = _script(fake, env, str(FORCE), "chain.bench.test")
        forced.update(ca_certkeys_before=old_cas, ca_certkeys_after=_ca_certkeys(fake))
        results["forced_renewal_new_issuer"] = _judge("forced_renewal_new_issuer", forced)
    return results


def _ca_certkeys(fake: Any) -> list[str]:
    return sorted(c["certkey"] for c in fake.certkeys()
                  if "key" not in c and str(c["certkey"]).startswith("le-"))


def _new_account(base: Path, pebble: Any) -> None:
    config = base / "home" / "config.sh"
    account = pebble.new_account(base / "account-2")
    # a restarted pebble listens on new ports: later lines win in config.sh
    config.write_text(config.read_text() + f'CA="{pebble.directory}"\nACCOUNTDIR="{account}"\n')


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def _serve_dir(directory: Path, port: int) -> http.server.ThreadingHTTPServer:
    """Serve ``directory`` as /.well-known/acme-challenge/ on 127.0.0.1:``port``."""
    root = directory.parent / "webroot"
    (root / ".well-known").mkdir(parents=True, exist_ok=True)
    link = root / ".well-known" / "acme-challenge"
    if not link.exists():
        link.symlink_to(directory)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _dehydrated_once(base: Path, pebble: Any, hook: Path, env: dict[str, str],
                     name: str) -> float:
    from tests.stack import DEHYDRATED, write_config

    account = pebble.new_account(base / "account")
    config = write_config(base / "dehydrated", pebble, hook, account, "yes")
    started = time.perf_counter()
    done = subprocess.run([DEHYDRATED, "-c", "-f", str(config), "-d", name],
                          capture_output=True, text=True, env=env, timeout=300)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"dehydrated failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    return wall


def wall(work: Path, pebble_factory: Any, port: int, runs: int = WALL_RUNS) -> dict[str, Any]:
    """1-name issuance: our hook vs a do-nothing hook, interleaved, median of ``runs`` each.

    ``plain``: dehydrated run by hand (each hook process logs in and out itself, as before);
    ``run_dir``: as the scripts run it (one session, read-once answers) plus the end-of-run
    logout (``ns-letsencrypt end-run``, a process of its own).
    """
    from tests.conftest import PASSWORD, USER
    from tests.fakens import FakeNetScaler
    from tests.stack import _base_env, free_port, hook_env

    ours_pebble = pebble_factory(None)
    noop_port = free_port()
    noop_pebble = pebble_factory(None, http_port=noop_port)
    noop_hook = work / "noop-hook.sh"
    noop_hook.write_text("#!/bin/bash\nexit 0\n")
    noop_hook.chmod(0o755)
    samples: dict[str, list[float]] = {"noop": [], "plain": [], "run_dir": []}
    with FakeNetScaler(users={USER: PASSWORD}, dataplane_port=port) as fake:
        fake.add_lbvserver("web", servicetype="HTTP", port=80, state="UP")
        for i in range(runs):
            for variant in ("plain", "run_dir"):
                base = work / f"wall-{variant}-{i}"
                base.mkdir(parents=True)
                env = {**_base_env(), **hook_env(base, fake), "TMPDIR": str(base)}
                if variant == "run_dir":
                    (base / "run").mkdir(mode=0o700)
                    env["NS_LE_RUN_DIR"] = str(base / "run")
                seconds = _dehydrated_once(base, ours_pebble, REPO / "hooks" / "ns-hook.sh",
                                           env, f"{variant.replace('_', '')}{i}.bench.test")
                if variant == "run_dir":
                    seconds += _end_run(env)
                samples[variant].append(seconds)
            base = work / f"wall-noop-{i}"
            (base / "dehydrated" / "wellknown").mkdir(parents=True)
            server = _serve_dir(base / "dehydrated" / "wellknown", noop_port)
            try:
                samples["noop"].append(_dehydrated_once(
                    base, noop_pebble, noop_hook, {**_base_env(), "TMPDIR": str(base)},
                    f"noop{i}.bench.test"))
            finally:
                server.shutdown()
                server.server_close()
    medians = {k: statistics.median(v) for k, v in samples.items()}
    result: dict[str, Any] = {"runs": runs, "target_s": WALL_TARGET_S}
    for variant in ("noop", "plain", "run_dir"):
        result[f"{variant}_median_s"] = round(medians[variant], 3)
        result[f"{variant}_s"] = [round(s, 3) for s in samples[variant]]
    for variant in ("plain", "run_dir"):
        difference = medians[variant] - medians["noop"]
        result[f"{variant}_difference_s"] = round(difference, 3)
        result[f"{variant}_target_met"] = difference <= WALL_TARGET_S
    return result


def _end_run(env: dict[str, str]) -> float:
    """What the scripts' exit trap does after dehydrated: end the run's session - starting
    Python only when a session file is left, as ``nsle_end_session`` does."""
    started = time.perf_counter()
    if not any(Path(env["NS_LE_RUN_DIR"]).glob("session-*.json")):
        return time.perf_counter() - started
    subprocess.run([env["NS_LE_PYTHON"], "-m", "ns_letsencrypt", "end-run"], env={
        **env, "PYTHONPATH": str(REPO)}, capture_output=True, timeout=60, check=False)
    return time.perf_counter() - started


def run() -> dict[str, Any]:
    """Every scenario and the wall-time comparison; one JSON-able document."""
    from tests.stack import Pebble, free_port

    require_stack_tools()
    # Bytecode for the package, as an installed host has it (tools/install-deps.sh compiles it;
    # Python writes it at the first run unless it may not): without it, and with
    # PYTHONDONTWRITEBYTECODE set, every hook process would compile ns_letsencrypt again.
    compileall.compile_dir(str(REPO / "ns_letsencrypt"), quiet=1)
    work = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    port = free_port()
    made: list[Pebble] = []

    def make(chain_length: Any = None, http_port: int = port) -> Pebble:
        directory = work / f"pebble-{len(made)}"
        directory.mkdir()
        instance = Pebble(directory, http_port, chain_length)
        made.append(instance)
        return instance.start()

    try:
        result = scenarios(work, make, port)
        result["wall"] = wall(work, make, port)
    finally:
        for instance in made:
            instance.stop()
        shutil.rmtree(work, ignore_errors=True)
    result["budgets_met"] = all(result[k]["within_budget"] for k in BUDGETS)
    result["dehydrated"] = os.environ.get("DEHYDRATED_BIN", "dehydrated")
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
