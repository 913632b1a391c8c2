"""End-to-end issuance with pebble: wall time, and the share of it spent inside our hook.

Real dehydrated + pebble + pebble-challtestsrv + ``hooks/ns-hook.sh`` + the fake NetScaler on
127.0.0.1 (``tests/stack.py``). dehydrated's ``HOOK`` is a tiny bash wrapper that appends the
hook name and bash's ``EPOCHREALTIME`` before and after each call of the real hook to a file,
so the hook's time is measured from the outside (process start-up included) and the rest of
the wall time is dehydrated's and pebble's own (including dehydrated's fixed ``sleep`` calls).

Cases: 1 name and 20 names with ``HOOK_CHAIN=yes``, and 20 names with ``HOOK_CHAIN=no``.
Target: hook time < 10% of the wall time of the 20-name issuance (HOOK_CHAIN=yes).
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import REPO, require_stack_tools

CASES = ((1, "yes"), (20, "yes"), (20, "no"))
TARGET_SHARE = 0.10
WRAPPER = """#!/bin/bash
# Times one call of the real hook from the outside; keeps its exit status.
start=$EPOCHREALTIME
{hook} "$@"
status=$?
printf '%s %s %s\\n' "$1" "$start" "$EPOCHREALTIME" >>{times}
exit $status
"""


def hook_wrapper(directory: Path) -> tuple[Path, Path]:
    """(wrapper script, the file it appends ``name start end`` lines to)."""
    times = directory / "hook-times.txt"
    wrapper = directory / "timed-hook.sh"
    wrapper.write_text(WRAPPER.format(hook=REPO / "hooks" / "ns-hook.sh", times=times))
    wrapper.chmod(0o755)
    return wrapper, times


def hook_seconds(times: Path) -> tuple[float, int, dict[str, float]]:
    """Total seconds inside the hook, number of calls, and seconds per hook name."""
    per_name: dict[str, float] = collections.defaultdict(float)
    calls = 0
    for line in times.read_text().splitlines():
        name, start, end = line.split()
        per_name[name] += float(end) - float(start)
        calls += 1
    return sum(per_name.values()), calls, {k: round(v, 3) for k, v in per_name.items()}


def issue(work: Path, pebble: Any, fake: Any, names: int, hook_chain: str) -> dict[str, Any]:
    """One ``dehydrated -c`` issuing one certificate with ``names`` names; its timings."""
    from tests.stack import DEHYDRATED, _base_env, hook_env, write_config

    base = work / f"n{names}-chain-{hook_chain}"
    base.mkdir(parents=True)
    wrapper, times = hook_wrapper(base)
    domains = [f"host{i:02d}.bench.test" for i in range(names)]
    # A new account per run: pebble may reuse an account's authorizations and skip challenges.
    account = pebble.new_account(base / "account")
    config = write_config(base / "dehydrated", pebble, wrapper, account, hook_chain)
    env = {**_base_env(), **hook_env(base, fake), "TMPDIR": str(base)}
    argv = [DEHYDRATED, "-c", "-f", str(config)]
    for domain in domains:
        argv += ["-d", domain]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"dehydrated failed ({done.returncode}): {done.stdout[-2000:]}"
                           f"{done.stderr[-2000:]}")
    inside, calls, per_name = hook_seconds(times)
    deployed = any(str(c.get("certkey", "")).startswith("le-host00") for c in fake.certkeys())
    return {
        "names": names, "hook_chain": hook_chain, "wall_s": round(wall, 3),
        "hook_s": round(inside, 3), "outside_hook_s": round(wall - inside, 3),
        "hook_share": round(inside / wall, 4), "hook_calls": calls,
        "hook_s_by_name": per_name, "certkey_deployed": deployed,
    }


def run() -> dict[str, Any]:
    """Every case against one pebble and one fake NetScaler; the 20-name share vs target."""
    from tests.fakens import FakeNetScaler
    from tests.stack import PASSWORD, USER, Pebble, free_port

    require_stack_tools()
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    port = free_port()
    pebble = Pebble(work / "pebble", port)
    (work / "pebble").mkdir()
    results = []
    try:
        pebble.start()
        with FakeNetScaler(users={USER: PASSWORD}, dataplane_port=port) as fake:
            fake.add_lbvserver("web", servicetype="HTTP", port=80, state="UP")
            for names, chain in CASES:
                results.append(issue(work, pebble, fake, names, chain))
    finally:
        pebble.stop()
        shutil.rmtree(work, ignore_errors=True)
    judged = next(r for r in results if r["names"] == 20 and r["hook_chain"] == "yes")
    return {
        "dehydrated": os.environ.get("DEHYDRATED_BIN", "dehydrated"),
        "cases": results,
        "target_hook_share_20_names": TARGET_SHARE,
        "hook_share_20_names": judged["hook_share"],
        "target_met": judged["hook_share"] < TARGET_SHARE,
    }
