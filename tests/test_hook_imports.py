"""Hook processes never import requests, urllib3 or http.cookiejar (issue 13's wall-time budget).

Each of dehydrated's hook calls is a fresh Python process, and importing requests costs more
than the whole NITRO transport on the standard library. Every hook command of a real run is
run here as its own process against the fake NetScaler; each must succeed and, at its end,
must not have loaded any of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests import pki

FORBIDDEN = ("requests", "urllib3", "http.cookiejar")
# Runs one CLI command, then prints which forbidden modules the process loaded.
PROBE = (
    "import json, sys\n"
    "from ns_letsencrypt.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('requests', 'urllib3')\n"
    "                or m == 'http.cookiejar')\n"
    "print(json.dumps({'status': status, 'loaded': loaded}))\n"
)
TOKEN = "tok-" + "b" * 39


def hook(env: dict[str, str], *argv: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", PROBE, "hook", *argv], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 0, done.stderr
    return result


def test_no_hook_command_of_a_run_imports_requests(
    fake: Any, fake_env: Path, tmp_path: Path
) -> None:
    base = tmp_path / "basedir"
    base.mkdir()
    (base / "domains.txt").write_text("www.example.com\n")
    (base / "lock").write_text("run started\n")
    env = {**os.environ, "BASEDIR": str(base), "CERTDIR": str(base / "certs")}
    challenge = ["www.example.com", TOKEN, TOKEN + ".thumb"]
    hierarchy = pki.make_hierarchy()
    leaf = pki.make_leaf(hierarchy.issuer, ["www.example.com"])
    files = pki.write_cert_dir(base / "certs" / "www.example.com", leaf, hierarchy)
    later = (base / "lock").stat().st_mtime + 1  # written after the run took its lock
    os.utime(files["cert"], (later, later))
    calls = [
        ["startup_hook"],
        ["deploy_challenge", *challenge],
        ["clean_challenge", *challenge],
        ["deploy_cert", "www.example.com", str(files["key"]), str(files["cert"]),
         str(files["fullchain"]), str(files["chain"]), "1700000000"],
        ["exit_hook"],
    ]
    loaded = {call[0]: hook(env, *call)["loaded"] for call in calls}
    assert loaded == {call[0]: [] for call in calls}
    assert [c["certkey"] for c in fake.certkeys()].count("le-www.example.com") == 1
