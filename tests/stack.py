"""End-to-end test stack: pebble + pebble-challtestsrv + real dehydrated + ``hooks/ns-hook.sh``
+ the fake NetScaler, on 127.0.0.1 only (the recipe and pitfalls of ``teststack.md``).

``tests/conftest.py`` loads it as a plugin (``pytest_plugins``), so every test module can use
these fixtures without importing them (import helpers such as :class:`Stack` for annotations):

``dataplane_port`` (session)
    The port pebble validates HTTP-01 against (its ``httpPort``). Every ``ns`` fake listens on it
    with its HTTP data plane, so one pebble serves all tests while each test gets a fresh fake.
``pebble_factory`` (session)
    ``pebble_factory(chain_length=None) -> Pebble``: a new pebble (+ its own challtestsrv) with
    ``PEBBLE_CHAIN_LENGTH`` if given. Every instance is stopped at the end of the session.
    ``Pebble.restart(chain_length=...)`` gives a new root and intermediates (a new issuer);
    pebble forgets accounts when it restarts, and every run registers a new one anyway.
``pebble`` (session)
    The default instance (chain length 1: leaf + one intermediate).
``ns`` (function)
    A started ``FakeNetScaler`` on ``dataplane_port``: user ``nsroot`` / ``PASSWORD``, HTTP lb
    vserver ``web`` (it receives the port-80 traffic) and HTTP cs vserver ``csweb``.
``acme`` (function)
    A :class:`Stack` for this test: its own BASEDIR and a hook environment pointing at ``ns``.
    ``acme.run_dehydrated("-c", "-d", "www.example.test", hook_chain="yes")`` returns the
    ``CompletedProcess`` (``check=True`` asserts exit 0 and shows the output otherwise); each
    run registers its own ACME account, so pebble never skips a challenge by reusing an
    authorization from an earlier run (``acme.new_account()`` gives one for other configs);
    ``acme.certdir(name)``, ``acme.root`` (pebble's current root, fetched after each start),
    ``acme.env`` (the hook's NS_* settings: change them before a run, or pass ``env=`` to one run).
    Use ``acme.use_pebble(other)`` to switch a test to another pebble instance.

Without dehydrated, ``hook_env(tmp_path, ns)`` gives the same hook environment for running
``hooks/ns-hook.sh`` or ``ns-letsencrypt`` directly.

The hook is the real ``hooks/ns-hook.sh`` run by dehydrated; its Python is ``sys.executable``
(``NS_LE_PYTHON``), its settings come from the environment only (``NS_LE_HOME`` points at an
empty directory so no developer ``.env`` is read), the password from a 0600 file. dehydrated
is ``$DEHYDRATED_BIN`` or ``dehydrated`` on PATH. Paths are kept free of spaces (CURL_OPTS).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from tests.conftest import PASSWORD, USER

REPO = Path(__file__).resolve().parent.parent
HOOK = REPO / "hooks" / "ns-hook.sh"
DEHYDRATED = os.environ.get("DEHYDRATED_BIN", "dehydrated")
NEEDED = ("pebble", "pebble-challtestsrv", DEHYDRATED, "openssl", "curl")
PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy")


def missing_tools() -> list[str]:
    """The programs the stack needs that are not on PATH."""
    return [tool for tool in NEEDED if not shutil.which(tool)]


# -- small helpers (teststack.md §8) ------------------------------------------------------


def free_port(udp_too: bool = False) -> int:
    """A loopback port free right now (for TCP, and UDP too when asked)."""
    for _ in range(100):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            if not udp_too:
                return port
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def dns_answers(port: int, name: str = "probe.example.test") -> bool:
    """True when the DNS server on ``port`` answers an A query for ``name``."""
    query = struct.pack(">HHHHHH", random.randint(0, 65535), 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    query += struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(query, ("127.0.0.1", port))
        data, _ = sock.recvfrom(4096)
    return bool(struct.unpack(">H", data[6:8])[0])


def https_get(url: str, cafile: Path) -> tuple[int, bytes]:
    """GET over TLS trusting only ``cafile``, without any proxy."""
    context = ssl.create_default_context(cafile=str(cafile))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    with opener.open(url, timeout=2) as answer:
        return answer.status, answer.read()


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str,
               timeout: float = 15.0) -> None:
    """Poll ``ready`` until it is true; fail fast if ``proc`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with status {proc.returncode}")
        try:
            if ready():
                return
        except (OSError, ValueError, struct.error):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout} s")


def spawn(argv: list[str], log: Path,
          env: Optional[Mapping[str, str]] = None) -> subprocess.Popen[bytes]:
    """Start a server process with stdout and stderr going to ``log``."""
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(env) if env is not None else None)


def stop(proc: Optional[subprocess.Popen[bytes]]) -> None:
    """Terminate one of our own children and reap it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- pebble -------------------------------------------------------------------------------


class Pebble:
    """pebble and its DNS (challtestsrv answering every name with 127.0.0.1), restartable."""

    def __init__(self, workdir: Path, http_port: int, chain_length: Optional[int] = None):
        self.workdir = workdir
        self.http_port = http_port
        self.chain_length = chain_length
        self.generation = 0
        self.tls_cert = workdir / "cert.pem"
        self.root = workdir / "root-0.pem"
        self.directory = self.mgmt = self.challtestsrv_mgmt = ""
        self.dns_port = 0
        self._dns: Optional[subprocess.Popen[bytes]] = None
        self._proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> Pebble:
        """Start challtestsrv (once) and pebble; fetch pebble's root."""
        if not self.tls_cert.exists():
            self._make_tls_cert()
        if self._dns is None:
            self._start_dns()
        for attempt in range(3):
            try:
                self._start_pebble()
                return self
            except RuntimeError:
                stop(self._proc)
                if attempt == 2:
                    raise
        return self

    def restart(self, chain_length: Optional[int] = None) -> None:
        """A new pebble process: new root and intermediates, accounts forgotten."""
        stop(self._proc)
        if chain_length is not None:
            self.chain_length = chain_length
        self.generation += 1
        self._start_pebble()

    def stop(self) -> None:
        """Stop pebble and challtestsrv."""
        stop(self._proc)
        stop(self._dns)
        self._dns = None

    def fetch(self, path: str) -> bytes:
        """GET a management endpoint (``/roots/0``, ``/intermediates/0`` ...)."""
        return https_get(self.mgmt + path, self.tls_cert)[1]

    def new_account(self, accountdir: Path) -> Path:
        """Register a new ACME account in ``accountdir`` with the current pebble process.

        pebble hands out an account's earlier valid authorization for the same name instead of
        a new challenge about one order in a hundred even with ``PEBBLE_AUTHZREUSE=0`` (its
        test is ``rand.Intn(100) > percent``), and such a run never calls the hook. A run that
        asserts what its challenges did needs an account with no earlier authorizations.
        """
        base = accountdir.parent / f"{accountdir.name}-register"
        config = write_config(base, self, hook=None, accountdir=accountdir)
        result = subprocess.run(
            [DEHYDRATED, "--register", "--accept-terms", "-f", str(config)],
            capture_output=True, text=True, timeout=120, env={**_base_env(), "TMPDIR": str(base)})
        assert result.returncode == 0, result.stdout + result.stderr
        return accountdir

    def _make_tls_cert(self) -> None:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(self.workdir / "key.pem"), "-out", str(self.tls_cert)],
            check=True, capture_output=True)

    def _start_dns(self) -> None:
        self.dns_port, cts_mgmt = free_port(udp_too=True), free_port()
        self._dns = spawn(
            ["pebble-challtestsrv", "-dns01", f"127.0.0.1:{self.dns_port}",
             "-http01", "", "-https01", "", "-tlsalpn01", "",
             "-management", f"127.0.0.1:{cts_mgmt}",
             "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
            self.workdir / "challtestsrv.log")
        self.challtestsrv_mgmt = f"http://127.0.0.1:{cts_mgmt}"
        wait_until(lambda: dns_answers(self.dns_port), self._dns, "pebble-challtestsrv")

    def _start_pebble(self) -> None:
        acme_port, mgmt_port = free_port(), free_port()
        config = self.workdir / "config.json"
        config.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{acme_port}",
            "managementListenAddress": f"127.0.0.1:{mgmt_port}",
            "certificate": str(self.tls_cert), "privateKey": str(self.workdir / "key.pem"),
            "httpPort": self.http_port, "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}, indent=2))
        env = {**_base_env(), **PEBBLE_ENV}
        if self.chain_length is not None:
            env["PEBBLE_CHAIN_LENGTH"] = str(self.chain_length)
        self._proc = spawn(
            ["pebble", "-config", str(config), "-dnsserver", f"127.0.0.1:{self.dns_port}"],
            self.workdir / f"pebble-{self.generation}.log", env)
        self.directory = f"https://127.0.0.1:{acme_port}/dir"
        self.mgmt = f"https://127.0.0.1:{mgmt_port}"
        wait_until(lambda: https_get(self.directory, self.tls_cert)[0] == 200, self._proc,
                   "pebble")
        wait_until(lambda: https_get(self.mgmt + "/roots/0", self.tls_cert)[0] == 200,
                   self._proc, "pebble management")
        # pebble makes a new root at every start (pitfall 16): never reuse an old one.
        self.root = self.workdir / f"root-{self.generation}.pem"
        self.root.write_bytes(self.fetch("/roots/0"))


def _base_env() -> dict[str, str]:
    """os.environ without proxies (everything here is loopback)."""
    return {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}


def write_config(base: Path, pebble: Pebble, hook: Optional[Path], accountdir: Path,
                 hook_chain: str = "no", extra: Optional[Mapping[str, str]] = None) -> Path:
    """A dehydrated config for one BASEDIR (teststack.md §3.6)."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "wellknown").mkdir(exist_ok=True)
    lines = {
        "CA": pebble.directory, "CHALLENGETYPE": "http-01", "BASEDIR": str(base),
        "WELLKNOWN": str(base / "wellknown"), "ACCOUNTDIR": str(accountdir),
        "HOOK_CHAIN": hook_chain,
        "CURL_OPTS": f"--cacert {pebble.tls_cert} --noproxy 127.0.0.1,localhost",
        "KEYSIZE": "2048", "ACCOUNT_KEYSIZE": "2048",
    }
    if hook is not None:
        lines["HOOK"] = str(hook)
    lines.update(extra or {})
    config = base / "config"
    config.write_text("".join(f'{key}="{value}"\n' for key, value in lines.items()))
    return config


def hook_env(tmp: Path, ns: Any) -> dict[str, str]:
    """The NS_* settings of the hook for the fake ``ns`` (password in a 0600 file in ``tmp``)."""
    home = tmp / "home"  # NS_LE_HOME: an install dir without .env or mynsconfig.py
    home.mkdir(exist_ok=True)
    password_file = tmp / "ns-password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    return {
        "NS_LE_HOME": str(home), "NS_LE_PYTHON": sys.executable,
        "NS_URL": ns.url, "NS_USER": USER, "NS_PASSWORD_FILE": str(password_file),
        "NS_TLS_PIN": ns.cert_sha256, "NS_VSERVER": "web", "NS_VSERVER_TYPE": "lb",
        "NS_PREFLIGHT": "warn", "NS_PREFLIGHT_ADDRESS": f"127.0.0.1:{ns.dataplane_port}",
        "NS_TIMEOUT": "5,20",
    }


# -- one test's stack ---------------------------------------------------------------------


class Stack:
    """dehydrated for one test: own BASEDIR, the real hook, settings pointing at ``ns``."""

    def __init__(self, tmp: Path, pebble: Pebble, ns: Any) -> None:
        if " " in str(tmp):
            raise RuntimeError(f"the test directory {tmp} contains a space (CURL_OPTS)")
        self.tmp = tmp
        self.pebble = pebble
        self.ns = ns
        self.basedir = tmp / "dehydrated"
        self.env: dict[str, str] = hook_env(tmp, ns)
        self._accounts = 0

    @property
    def root(self) -> Path:
        """pebble's current root certificate (PEM file)."""
        return self.pebble.root

    def use_pebble(self, pebble: Pebble) -> None:
        """Run the following dehydrated calls against another pebble instance."""
        self.pebble = pebble

    def new_account(self) -> Path:
        """A new ACME account for the next run: every one of its names gets a fresh challenge."""
        self._accounts += 1
        return self.pebble.new_account(self.tmp / f"account-{self._accounts}")

    def certdir(self, name: str) -> Path:
        """Where dehydrated puts the certificate named after ``name`` (its first domain)."""
        return self.basedir / "certs" / name

    def run_dehydrated(
        self,
        *args: str,
        hook_chain: str = "no",
        env: Optional[Mapping[str, str]] = None,
        check: bool = True,
        config: Optional[Mapping[str, str]] = None,
        timeout: float = 180,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``dehydrated <args> -f <config>``; ``config`` adds or overrides config lines."""
        accountdir = self.new_account()
        conf = write_config(self.basedir, self.pebble, HOOK, accountdir, hook_chain, config)
        run_env = {**_base_env(), **self.env, "TMPDIR": str(self.tmp), **(env or {})}
        result = subprocess.run([DEHYDRATED, *args, "-f", str(conf)], capture_output=True,
                                text=True, env=run_env, timeout=timeout)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dataplane_port() -> int:
    """The port pebble validates against; each test's fake data plane listens on it."""
    return free_port()


@pytest.fixture(scope="session")
def pebble_factory(tmp_path_factory: pytest.TempPathFactory,
                   dataplane_port: int) -> Iterator[Callable[..., Pebble]]:
    """``make(chain_length=None) -> Pebble``, started; all stopped at the end."""
    if missing_tools():
        pytest.skip(f"missing programs: {', '.join(missing_tools())}")
    made: list[Pebble] = []

    def make(chain_length: Optional[int] = None) -> Pebble:
        instance = Pebble(tmp_path_factory.mktemp("pebble"), dataplane_port, chain_length)
        made.append(instance)
        return instance.start()

    yield make
    for instance in made:
        instance.stop()


@pytest.fixture(scope="session")
def pebble(pebble_factory: Callable[..., Pebble]) -> Pebble:
    """The session's default pebble (chain length 1)."""
    return pebble_factory()


@pytest.fixture
def ns(dataplane_port: int) -> Iterator[Any]:
    """A fresh fake NetScaler whose HTTP data plane is on ``dataplane_port``."""
    from tests.fakens import FakeNetScaler

    with FakeNetScaler(users={USER: PASSWORD}, dataplane_port=dataplane_port) as fake:
        fake.add_lbvserver("web", servicetype="HTTP", port=80, state="UP")
        fake.add_csvserver("csweb", servicetype="HTTP", port=80, state="UP")
        yield fake


@pytest.fixture
def acme(tmp_path: Path, pebble: Pebble, ns: Any) -> Stack:
    """dehydrated + the real hook for this test, against ``ns`` and ``pebble``."""
    return Stack(tmp_path, pebble, ns)


# -- standalone (tools/demo.sh) -------------------------------------------------------------


def serve_pebble(argv: Optional[list[str]] = None) -> int:
    """``python -m tests.stack WORKDIR HTTP_PORT``: start challtestsrv + pebble (validating
    HTTP-01 against 127.0.0.1:HTTP_PORT), print one JSON line (``directory``, ``tls_cert``,
    ``root``, ``mgmt``) when ready, serve until SIGTERM or SIGINT, then stop both."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m tests.stack", description=serve_pebble.__doc__)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("http_port", type=int)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    instance = Pebble(args.workdir, args.http_port)
    try:
        instance.start()
        print(json.dumps({"directory": instance.directory, "tls_cert": str(instance.tls_cert),
                          "root": str(instance.root), "mgmt": instance.mgmt}), flush=True)
        while not done.wait(0.5):
            pass
    finally:
        instance.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(serve_pebble())
