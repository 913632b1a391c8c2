"""What a scheduled run prints (the cron mail) and logs, and what the transcript costs.

Stack part: real dehydrated + pebble + ``hooks/ns-hook.sh`` + the fake NetScaler, through
``ns-cronjob.sh``. One run issues a certificate, then quiet days (nothing due) follow with the
settings in ``.env`` and with a legacy ``mynsconfig.py``; for each: lines and bytes on stdout
and stderr, bytes added to the log file, wall seconds, and how often the deprecation note was
logged. With ``BENCH_BASELINE_REPO=/path/to/another/checkout`` the same quiet days also run
that checkout's scripts and hook (e.g. the code before quiet runs) for comparison.

Stub part: the per-line cost of the timestamped transcript, from ``ns-cronjob.sh`` runs with a
stub dehydrated printing 0 and 5000 lines (median of 3 each).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import REPO, median_seconds, require_stack_tools

QUIET_DAYS = 3
STUB_LINES = 5000
LEGACY = 'nitroNSIP = "{url}"\nnitroUser = "{user}"\nnitroPass = "{password}"\nnsvip = "web"\n'


def _home(work: Path, code: Path, pebble: Any, fake: Any, name: str) -> tuple[Path, dict[str, str]]:
    """An NS_LE_HOME whose config.sh points at pebble and ``code``'s hook; the run's env."""
    from tests.stack import _base_env, hook_env

    home = work / name
    home.mkdir()
    secrets = work / f"{name}-secrets"
    secrets.mkdir()
    settings = hook_env(secrets, fake)
    account = pebble.new_account(work / f"{name}-account")
    lines = {"CA": pebble.directory, "ACCOUNTDIR": str(account),
             "HOOK": str(code / "hooks" / "ns-hook.sh"),
             "CURL_OPTS": f"--cacert {pebble.tls_cert} --noproxy 127.0.0.1,localhost",
             "ACCOUNT_KEYSIZE": "2048", "KEYSIZE": "2048"}
    (home / "config.sh").write_text((REPO / "config.sh.example").read_text() + "\n" + "".join(
        f'{key}="{value}"\n' for key, value in lines.items()))
    (home / "domains.txt").write_text("www.example.test\n")
    env = {**_base_env(), "TMPDIR": str(work), "NS_LE_HOME": str(home),
           "NS_LE_PYTHON": sys.executable}
    dotenv = home / ".env"
    dotenv.write_text("".join(f"{k}={v}\n" for k, v in settings.items()
                              if k not in ("NS_LE_HOME", "NS_LE_PYTHON")))
    dotenv.chmod(0o600)
    return home, env


def _run(code: Path, home: Path, env: dict[str, str]) -> dict[str, Any]:
    log = home / "log" / "ns-letsencrypt.log"
    before = log.stat().st_size if log.exists() else 0
    started = time.perf_counter()
    # cwd: "python -m" imports from the working directory first, so not from this checkout
    done = subprocess.run([str(code / "ns-cronjob.sh")], env=env, capture_output=True,
                          text=True, timeout=600, cwd=home)
    wall = time.perf_counter() - started
    after = log.stat().st_size if log.exists() else 0
    text = log.read_text() if log.exists() else ""
    return {"exit": done.returncode, "wall_s": round(wall, 3),
            "stdout_lines": len(done.stdout.splitlines()), "stdout_bytes": len(done.stdout),
            "stderr_lines": len(done.stderr.splitlines()), "stderr_bytes": len(done.stderr),
            "terminal_deprecation_notes": done.stderr.count("is deprecated"),
            "log_bytes_added": after - before,
            "log_deprecation_notes": text[before:].count("is deprecated")}


def _to_legacy(home: Path, fake: Any) -> None:
    """Move the appliance settings from .env to a mynsconfig.py (mode 600)."""
    from tests.stack import PASSWORD, USER

    dotenv = home / ".env"
    keep = [line for line in dotenv.read_text().splitlines()
            if line.split("=")[0] not in ("NS_URL", "NS_USER", "NS_PASSWORD_FILE", "NS_VSERVER")]
    dotenv.write_text("".join(f"{line}\n" for line in keep))
    legacy = home / "mynsconfig.py"
    legacy.write_text(LEGACY.format(url=fake.url, user=USER, password=PASSWORD))
    legacy.chmod(0o600)


def _quiet_days(code: Path, work: Path, pebble: Any, fake: Any, name: str) -> dict[str, Any]:
    home, env = _home(work, code, pebble, fake, name)
    first = _run(code, home, env)
    days = [_run(code, home, env) for _ in range(QUIET_DAYS)]
    _to_legacy(home, fake)
    legacy_days = [_run(code, home, env) for _ in range(QUIET_DAYS)]
    return {"code": str(code), "issuing_run": first, "quiet_day_env": days[-1],
            "quiet_day_env_wall_median_s": median_seconds([d["wall_s"] for d in days]),
            "quiet_day_legacy": legacy_days[-1],
            "quiet_day_legacy_wall_median_s": median_seconds([d["wall_s"] for d in legacy_days])}


def stack_part() -> dict[str, Any]:
    from tests.fakens import FakeNetScaler
    from tests.stack import PASSWORD, USER, Pebble, free_port

    require_stack_tools()
    work = Path(tempfile.mkdtemp(prefix="bench-quiet-"))
    port = free_port()
    (work / "pebble").mkdir()
    pebble = Pebble(work / "pebble", port)
    baseline = os.environ.get("BENCH_BASELINE_REPO")
    results: dict[str, Any] = {}
    try:
        pebble.start()
        for label, code in [("this", REPO)] + ([("baseline", Path(baseline))] if baseline else []):
            with FakeNetScaler(users={USER: PASSWORD}, dataplane_port=port) as fake:
                fake.add_lbvserver("web", servicetype="HTTP", port=80, state="UP")
                results[label] = _quiet_days(code, work, pebble, fake, label)
    finally:
        pebble.stop()
        shutil.rmtree(work, ignore_errors=True)
    return results


def stub_part() -> dict[str, Any]:
    """Seconds per transcript line: a stub dehydrated printing 0 or STUB_LINES lines."""
    work = Path(tempfile.mkdtemp(prefix="bench-quiet-stub-"))
    try:
        home = work / "home"
        home.mkdir()
        (home / "config.sh").write_text("")
        (home / "domains.txt").write_text("www.example.test\n")
        stub = work / "dehydrated"
        stub.write_text('#!/bin/bash\n[ "$1" = --cron ] && for ((i = 0; i < ${LINES_OUT:-0}; '
                        'i++)); do echo " + line $i of a long dehydrated run"; done\nexit 0\n')
        stub.chmod(0o755)
        python = work / "python"
        python.write_text("#!/bin/bash\nexit 0\n")
        python.chmod(0o755)
        env = {**os.environ, "NS_LE_HOME": str(home), "DEHYDRATED": str(stub),
               "NS_LE_PYTHON": str(python)}
        timings = {}
        for lines in (0, STUB_LINES):
            samples = []
            for _ in range(3):
                started = time.perf_counter()
                subprocess.run([str(REPO / "ns-cronjob.sh")], env={**env, "LINES_OUT": str(lines)},
                               check=True, capture_output=True, timeout=300)
                samples.append(time.perf_counter() - started)
            timings[lines] = median_seconds(samples)
        per_line = (timings[STUB_LINES] - timings[0]) / STUB_LINES
        return {"run_0_lines_s": timings[0], f"run_{STUB_LINES}_lines_s": timings[STUB_LINES],
                "transcript_us_per_line": round(per_line * 1e6, 1)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run() -> dict[str, Any]:
    return {"stub": stub_part(), "stack": stack_part()}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
