"""Real certbot against pebble and the fake NetScaler, with ``ns-letsencrypt certbot`` hooks.

Each :class:`Certbot` has its own ``--config-dir``, ``--work-dir`` and ``--logs-dir`` under the
test's directory, trusts pebble's ACME TLS through ``REQUESTS_CA_BUNDLE``, and runs the hooks
with the same NS_* environment as the dehydrated stack (``tests/stack.py``'s ``hook_env``).
``TMPDIR`` is the test's directory, so the hooks' spool lives there too. certbot comes from the
virtualenv (the test extra in pyproject.toml); tests skip when it is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from tests.stack import Pebble, _base_env, hook_env

BIN = Path(sys.executable).parent
CERTBOT = shutil.which("certbot", path=str(BIN)) or shutil.which("certbot")
NS_LETSENCRYPT = BIN / "ns-letsencrypt"


def hook_command(hook: str) -> str:
    """The command line certbot stores for one of our hooks."""
    return f"{NS_LETSENCRYPT} certbot {hook}"


class Certbot:
    """certbot for one test: private directories, our hooks, settings pointing at ``ns``."""

    def __init__(self, tmp: Path, pebble: Pebble, ns: Any) -> None:
        self.tmp = tmp
        self.pebble = pebble
        self.ns = ns
        self.config_dir = tmp / "letsencrypt"
        self.env: dict[str, str] = hook_env(tmp, ns)

    @property
    def root(self) -> Path:
        return self.pebble.root

    def lineage(self, name: str) -> Path:
        return self.config_dir / "live" / name

    def spooled(self) -> list[Path]:
        """Files the auth hook's spool still holds (empty after every complete run)."""
        return sorted(self.tmp.glob("ns-letsencrypt-certbot-*/*"))

    def run(self, *args: str, env: Optional[Mapping[str, str]] = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """``certbot <args>`` with the private directories and pebble as the server."""
        assert CERTBOT, "certbot is not installed"
        argv = [CERTBOT, *args, "--non-interactive", "--server", self.pebble.directory,
                "--config-dir", str(self.config_dir), "--work-dir", str(self.tmp / "work"),
                "--logs-dir", str(self.tmp / "logs")]
        run_env = {**_base_env(), **self.env, "TMPDIR": str(self.tmp),
                   "REQUESTS_CA_BUNDLE": str(self.pebble.tls_cert), **(env or {})}
        result = subprocess.run(argv, capture_output=True, text=True, env=run_env, timeout=300)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def issue(self, *names: str, cert_name: Optional[str] = None,
              check: bool = True) -> subprocess.CompletedProcess[str]:
        """``certbot certonly --manual`` with our three hooks (stored for ``renew``)."""
        args = ["certonly", "--manual", "--preferred-challenges", "http",
                "--agree-tos", "--register-unsafely-without-email",
                "--manual-auth-hook", hook_command("auth"),
                "--manual-cleanup-hook", hook_command("cleanup"),
                "--deploy-hook", hook_command("deploy")]
        if cert_name:
            args += ["--cert-name", cert_name]
        for name in names:
            args += ["-d", name]
        return self.run(*args, check=check)

    def renew(self, cert_name: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A forced ``certbot renew`` of one lineage, with the hooks stored at issuance."""
        return self.run("renew", "--force-renewal", "--no-random-sleep-on-renew",
                        "--cert-name", cert_name, check=check)

    def ns_letsencrypt(self, *args: str,
                       env: Optional[Mapping[str, str]] = None) -> subprocess.CompletedProcess[str]:
        """Our CLI with the hooks' settings (e.g. the daily ``reconcile --certbot-dir``)."""
        run_env = {**_base_env(), **self.env, "TMPDIR": str(self.tmp), **(env or {})}
        return subprocess.run([str(NS_LETSENCRYPT), *args], capture_output=True, text=True,
                              env=run_env, timeout=120)
