"""The cost of the lifecycle steps (issue 13) in a daily ``ns-cronjob.sh`` run.

Real ns-cronjob.sh + dehydrated + pebble (behind ``tests/ari_responder.py``, which adds ARI)
+ the fake NetScaler, one certificate. After the first issuance, each case runs the whole
script several times and reports the median wall time and the NITRO requests of one run:

- ``quiet_day_lifecycle_off``: nothing due, NS_ARI=off, no NS_NOTIFY, no NS_METRICS_FILE;
- ``quiet_day_lifecycle_on``: nothing due, ARI asked (a window weeks ahead, Retry-After
  passed), NS_METRICS_FILE written, NS_NOTIFY set (nothing to send on a quiet day);
- ``ari_renewal``: the window has opened, so the run renews and deploys the certificate.

The difference between the first two is what ARI, metrics and notifications add to a day.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .common import REPO

RUNS = 5


def _home(work: Path, pebble: Any, fake: Any, ca: str) -> tuple[Path, dict[str, str]]:
    from tests.stack import DEHYDRATED, _base_env, hook_env, write_config

    env = {**_base_env(), **hook_env(work, fake), "TMPDIR": str(work)}
    home = Path(env["NS_LE_HOME"])
    accounts = work / "accounts"
    register = write_config(work / "register", SimpleNamespace(  # type: ignore[arg-type]
        directory=ca, tls_cert=pebble.tls_cert), hook=None, accountdir=accounts)
    subprocess.run([DEHYDRATED, "--register", "--accept-terms", "-f", str(register)],
                   check=True, capture_output=True, env=env, timeout=120)
    (home / "config.sh").write_text((REPO / "config.sh.example").read_text() + "".join(
        f'\n{key}="{value}"' for key, value in {
            "CA": ca, "ACCOUNTDIR": str(accounts), "HOOK": str(REPO / "hooks" / "ns-hook.sh"),
            "CURL_OPTS": f"--cacert {pebble.tls_cert} --noproxy 127.0.0.1,localhost",
            "ACCOUNT_KEYSIZE": "2048"}.items()) + "\n")
    (home / "domains.txt").write_text("www.bench.test\n")
    return home, env


def _cron(env: dict[str, str], fake: Any) -> tuple[float, int]:
    before = len(fake.requests)
    started = time.perf_counter()
    done = subprocess.run([str(REPO / "ns-cronjob.sh")], capture_output=True, text=True,
                          env=env, timeout=300)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"ns-cronjob.sh failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, len(fake.requests) - before


def _expire_retry_after(home: Path) -> None:
    path = home / "lifecycle-state.json"
    if path.exists():
        data = json.loads(path.read_text())
        for entry in data.get("ari", {}).values():
            entry["next_check"] = "2000-01-01T00:00:00Z"
        path.write_text(json.dumps(data))


def _case(env: dict[str, str], fake: Any, home: Path, runs: int = RUNS) -> dict[str, Any]:
    samples, requests = [], []
    for _ in range(runs):
        _expire_retry_after(home)
        seconds, count = _cron(env, fake)
        samples.append(seconds)
        requests.append(count)
    return {"runs": runs, "wall_s_median": round(statistics.median(samples), 3),
            "nitro_requests_per_run": sorted(set(requests))}


def run() -> dict[str, Any]:
    """The three cases against one pebble, one responder and one fake."""
    from tests.ari_responder import AriResponder, window
    from tests.fakens import FakeNetScaler
    from tests.receiver import JsonReceiver
    from tests.stack import PASSWORD, USER, Pebble, free_port

    work = Path(tempfile.mkdtemp(prefix="bench-lifecycle-"))
    port = free_port()
    (work / "pebble").mkdir()
    pebble = Pebble(work / "pebble", port)
    try:
        pebble.start()
        with FakeNetScaler(users={USER: PASSWORD}, dataplane_port=port) as fake, \
                AriResponder(pebble.tls_cert, pebble.workdir / "key.pem",
                             upstream=pebble.directory) as responder, JsonReceiver() as receiver:
            fake.add_lbvserver("web", servicetype="HTTP", port=80, state="UP")
            responder.answer = lambda _id: window(20, 21)
            home, env = _home(work, pebble, fake, responder.directory)
            _cron(env, fake)  # the first issuance
            off = _case({**env, "NS_ARI": "off"}, fake, home)
            on_env = {**env, "NS_METRICS_FILE": str(work / "m.prom"),
                      "NS_NOTIFY": f"json://127.0.0.1:{receiver.port}/n"}
            asked = len(responder.asked)
            on = _case(on_env, fake, home)
            on["ari_requests_per_run"] = (len(responder.asked) - asked) / RUNS
            responder.answer = lambda _id: window(-0.5, 0.5)
            renewal = _case(on_env, fake, home, runs=1)
    finally:
        pebble.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "dehydrated": os.environ.get("DEHYDRATED_BIN", "dehydrated"),
        "quiet_day_lifecycle_off": off,
        "quiet_day_lifecycle_on": on,
        "lifecycle_added_wall_s": round(on["wall_s_median"] - off["wall_s_median"], 3),
        "ari_renewal": renewal,
        "notifications_sent": len(receiver.messages),
    }
