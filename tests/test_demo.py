"""`make demo` (tools/demo.sh) runs end to end and leaves no process behind."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.stack import missing_tools

REPO = Path(__file__).resolve().parent.parent


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in argv:
            found.append(argv)
    return found


def test_demo_issues_deploys_serves_and_stops_everything(tmp_path: Path) -> None:
    if missing_tools() or not shutil.which("openssl"):
        pytest.skip(f"missing programs: {missing_tools()}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NS_")}
    env["NS_LE_DEMO_DIR"] = str(tmp_path)

    result = subprocess.run(["bash", str(REPO / "tools" / "demo.sh")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)

    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert out.count("Verify return code: 0 (ok)") == 2
    assert "DNS:www.demo.test, DNS:demo.test, DNS:shop.demo.test" in out
    assert "Skipping renew!" in out
    serials = [line.split("=", 1)[1] for line in out.splitlines()
               if line.strip().startswith("serial=")]
    assert len(serials) == 2 and serials[0] != serials[1]  # renewed in place, still served
    assert "NS-LETSENCRYPT OK - 1 certificate" in out
    assert "demo finished: every step passed" in out
    (password_file,) = tmp_path.glob("run.*/ns-password")
    assert password_file.read_text().strip() not in out + result.stderr
    assert processes_mentioning(str(tmp_path)) == []
